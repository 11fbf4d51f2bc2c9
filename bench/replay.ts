/**
 * Replay of a full history (docs/PROTOCOL.md "History and resume"): a channel with `history = 10000` on a
 * fresh server of ours, filled with 10,000 distinct payloads while a first multiplexed socket watches
 * them arrive live (its `subscribed` answer gives the epoch). Then, several times, a fresh socket
 * subscribes with `since: {epoch, seq: 0}` and must get `recovered: true` and seqs 1..10,000 in order,
 * each frame identical to the live one. Timed in this process, from sending the subscribe to the
 * 10,000th message; the server's RSS is read empty, once filled, and at the end of each replay. Once
 * with ~100 B payloads and once with ~1 KB, each on a server of its own so "empty" is empty, and each
 * beside the same fill on a channel without history (again a fresh server): what the fill leaves in the
 * heap that is not history.
 *
 * The baseline is the same 10,000 messages arriving live at the watcher (first NOTIFY sent → last
 * frame): what the database delivers, against which the replay shows what history saves a client.
 */
import { openSocket, subscribe, within } from './mux-socket.ts';
import type { Credit } from './notifier.ts';
import { bytes, type Context, type Outcome } from './scenario.ts';
import { schemaChannelToml, startOurs } from './servers.ts';
import { check, mb, ms, num, type TargetCheck, times } from './stats.ts';
import type { Target } from './target.ts';

const HISTORY = 10_000;
const SIZES = [100, 1000] as const;
const STEP_MS = 30_000;
const channelOf = (size: number) => `bench_history_${size}`;

/** One replay: when `subscribed` and the last message came (ms after the subscribe), and what was wrong. */
interface Replayed {
  readonly subscribedMs: number;
  readonly lastMs: number;
  readonly rssKb: number;
  readonly problem: string | undefined;
}

/** One payload size: the fill seen live, the server's memory, and every replay. */
interface SizeResult {
  readonly size: number;
  readonly liveMs: number;
  readonly rssEmptyKb: number;
  readonly rssFilledKb: number;
  /** RSS growth from the same fill on a channel without history (another fresh server). */
  readonly growthWithoutKb: number;
  /** The server's own account once filled (pgws_history_messages and _bytes on /metrics). */
  readonly held: { readonly messages: number; readonly bytes: number } | undefined;
  readonly replays: readonly Replayed[];
  readonly problem: string | undefined;
}

/** What /metrics says the channel's history holds, if it answers. */
async function held(target: Target, channel: string): Promise<SizeResult['held']> {
  const text = await fetch(`http://127.0.0.1:${target.port}/metrics`).then(
    (r) => r.text(),
    () => '',
  );
  const read = (name: string) => {
    const line = text.split('\n').find((l) => l.startsWith(`${name}{channel="${channel}"}`));
    return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
  };
  const messages = read('pgws_history_messages');
  const bytes = read('pgws_history_bytes');
  return messages === undefined || bytes === undefined ? undefined : { messages, bytes };
}

/** Why a list of message frames is not seqs 1..HISTORY of `channel` in order, or undefined. */
function disorder(frames: readonly string[], channel: string): string | undefined {
  if (frames.length !== HISTORY) return `${num(frames.length)} of ${num(HISTORY)} messages`;
  for (const [i, text] of frames.entries()) {
    const frame = JSON.parse(text) as { channel?: string; seq?: number };
    if (frame.channel !== channel || frame.seq !== i + 1) return `message ${i + 1} is ${text.slice(0, 80)}`;
  }
  return undefined;
}

// The fill has no client to wait for: its credit is always ahead.
const NO_WAIT: Credit = { progress: () => Number.MAX_SAFE_INTEGER, nextProgress: () => Promise.resolve() };

/** Fills `channel` with HISTORY notifications of `size` bytes while a fresh socket watches them arrive. */
async function fill(context: Context, target: Target, channel: string, size: number) {
  const [url = ''] = target.rootUrls(1);
  const live: string[] = [];
  const watcher = await openSocket(url);
  try {
    const watch = subscribe(watcher, { type: 'subscribe', id: 1, channel }, HISTORY, live);
    const position = await within(watch.answer, STEP_MS, 'subscribed');
    const sent = await context.rig.notifier.burst({
      channel,
      run: 0,
      count: HISTORY,
      size,
      windowBytes: context.rig.windowBytes,
      credit: NO_WAIT,
      deadlineMs: STEP_MS,
    });
    const lastLive = await within(watch.done, STEP_MS, `${num(HISTORY)} live messages`);
    // firstSendMs is this process's clock() (bench/protocol.ts): performance.timeOrigin + performance.now().
    const liveMs = lastLive - (sent.firstSendMs - performance.timeOrigin);
    const problem = position.seq !== 0 ? `the fresh channel's head is ${position.seq}, not 0` : disorder(live, channel);
    return { position, live, liveMs, problem };
  } finally {
    await watcher.close();
  }
}

/** Replays the whole history to a fresh socket and checks it against the live frames. */
async function replayOnce(target: Target, channel: string, epoch: string, live: readonly string[]): Promise<Replayed> {
  const [url = ''] = target.rootUrls(1);
  const socket = await openSocket(url);
  try {
    const frames: string[] = [];
    const started = performance.now();
    const resumed = subscribe(socket, { type: 'subscribe', id: 1, channel, since: { epoch, seq: 0 } }, HISTORY, frames);
    const answer = await within(resumed.answer, STEP_MS, 'subscribed');
    const lastAt = answer.recovered === true ? await within(resumed.done, STEP_MS, 'replayed messages') : Number.NaN;
    const rssKb = target.rssKb();
    const differs = frames.findIndex((frame, i) => frame !== live[i]);
    const problem =
      answer.recovered !== true || answer.seq !== 0
        ? `answered recovered: ${answer.recovered}, seq ${answer.seq}`
        : differs >= 0
          ? `replayed frame ${differs + 1} differs from the live one`
          : disorder(frames, channel);
    return { subscribedMs: answer.atMs - started, lastMs: lastAt - started, rssKb, problem };
  } finally {
    await socket.close();
  }
}

/** A fresh server of ours with one more channel; `use` runs against it and it is stopped after. */
async function withServer<T>(context: Context, toml: string, use: (target: Target) => Promise<T>): Promise<T> {
  const target = await startOurs({
    databaseUrl: context.rig.db.url,
    profileDir: context.profileDir,
    channelsToml: toml,
  });
  try {
    return await use(target);
  } finally {
    await target.stop();
  }
}

// After a fill: let the last frames' work settle before reading RSS.
const SETTLE_MS = 250;

async function measureSize(context: Context, size: number, rounds: number): Promise<SizeResult> {
  // The baseline for memory: the same fill on a channel without history, on a server of its own.
  const plainChannel = `bench_nohistory_${size}`;
  const growthWithoutKb = await withServer(context, schemaChannelToml(plainChannel), async (target) => {
    const empty = target.rssKb();
    await fill(context, target, plainChannel, size);
    await Bun.sleep(SETTLE_MS);
    return target.rssKb() - empty;
  });
  const channel = channelOf(size);
  return withServer(context, schemaChannelToml(channel, { history: HISTORY }), async (target) => {
    const rssEmptyKb = target.rssKb();
    const filled = await fill(context, target, channel, size);
    await Bun.sleep(SETTLE_MS);
    const rssFilledKb = target.rssKb();
    const heldNow = await held(target, channel);
    const replays: Replayed[] = [];
    for (let round = 1; round <= rounds && filled.problem === undefined; round++) {
      context.say(`multiplexed: replay of ${num(HISTORY)} × ${bytes(size)}, run ${round}/${rounds}`);
      replays.push(await replayOnce(target, channel, filled.position.epoch, filled.live));
    }
    const { liveMs, problem } = filled;
    return { size, liveMs, rssEmptyKb, rssFilledKb, growthWithoutKb, held: heldNow, replays, problem };
  });
}

const middle = (values: readonly number[]) => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)];

/** Runs the replay part of the multiplexed scenario. */
export async function replay(context: Context): Promise<Outcome> {
  const rounds = context.quick ? 2 : 5;
  const results: SizeResult[] = [];
  for (const size of SIZES) results.push(await measureSize(context, size, rounds));
  const rows = results.map((r) => {
    const last = middle(r.replays.map((x) => x.lastMs));
    const peak = Math.max(r.rssFilledKb, ...r.replays.map((x) => x.rssKb));
    return [
      bytes(r.size),
      num(HISTORY),
      `${r.replays.filter((x) => x.problem === undefined).length} / ${r.replays.length}`,
      ms(middle(r.replays.map((x) => x.subscribedMs))),
      ms(last),
      r.replays.length < 2 ? '' : r.replays.map((x) => ms(x.lastMs)).join(' · '),
      num(last === undefined ? undefined : HISTORY / (last / 1000)),
      ms(r.liveMs),
      times(last === undefined ? undefined : r.liveMs / last),
      r.held === undefined ? '–' : `${num(r.held.messages)} / ${num(r.held.bytes / 2 ** 20, 1)} MB`,
      mb(r.rssEmptyKb),
      mb(r.rssFilledKb),
      mb(r.growthWithoutKb),
      mb(r.rssFilledKb - r.rssEmptyKb - r.growthWithoutKb),
      mb(peak),
    ];
  });
  const problems = results.flatMap((r) => [
    ...(r.problem === undefined ? [] : [`- ${bytes(r.size)}: live fill: ${r.problem}`]),
    ...r.replays.flatMap((x, i) => (x.problem === undefined ? [] : [`- ${bytes(r.size)}, run ${i + 1}: ${x.problem}`])),
  ]);
  const targets: TargetCheck[] = results.map((r) => {
    const good = r.problem === undefined && r.replays.length > 0 && r.replays.every((x) => x.problem === undefined);
    return check(
      `replay of a full ${num(HISTORY)}-message history, ${bytes(r.size)}: recovered, seqs 1..${num(HISTORY)} in order, as sent live`,
      `${r.replays.filter((x) => x.problem === undefined).length} of ${r.replays.length} replays; median ${ms(middle(r.replays.map((x) => x.lastMs)))} ms to the last`,
      good ? 1 : 0,
      { min: 1 },
    );
  });
  return {
    sections: [
      {
        title: `Multiplexed: replay of a full ${num(HISTORY)}-message history to a resuming client`,
        headers: [
          'payload',
          'messages',
          'replays exact',
          'to subscribed ms',
          'to last ms',
          'to last ms per run',
          'messages/s',
          'live ms (baseline)',
          '× live',
          'held (server)',
          'RSS empty MB',
          'RSS filled MB',
          'fill without history: growth MB',
          'history ≈ MB',
          'RSS peak MB',
        ],
        rows,
        notes: [
          `A fresh server per payload size with \`history = ${num(HISTORY)}\` on one schema channel. Live = the same ${num(HISTORY)} notifications reaching the watching socket (first NOTIFY sent → last frame, 4 producer connections): the database's pace, what a client that had to wait for them again would spend. A replay subscribes with \`since: {epoch, seq: 0}\` on a fresh socket; "to last" is the median of ${rounds} runs, from sending the subscribe to the ${num(HISTORY)}th message, read in the orchestrator process. Held = the server's own account on /metrics (pgws_history_messages / pgws_history_bytes, payload text in UTF-16 code units). RSS filled − RSS empty is the history plus whatever heap the 10,000 notifications' processing left behind (RSS seldom shrinks after a GC); the same fill on a channel without history, on another fresh server, measures the latter, and history ≈ the difference (allocator noise included). RSS peak = the largest reading, each taken as a replay's last message arrived.`,
          ...problems,
        ],
      },
    ],
    targets,
  };
}
