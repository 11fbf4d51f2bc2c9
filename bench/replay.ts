/**
 * History replay, in the multiplexed scenario: a channel with `history = 10000` on a fresh server is
 * filled while a socket watches live (the baseline); fresh sockets then resume from seq 0 and must get
 * the same 10,000 frames in order. RSS is compared with the same fill on a channel without history.
 * The fill and the replay also serve the durable scenario (bench/durable.ts), from any position.
 */
import { openMux, type Subscribed, type Subscription } from './mux-client.ts';
import type { Credit, NotifyFunction } from './notifier.ts';
import { bytes, type Column, check, mb, ms, num, section, times } from './report.ts';
import * as s from './scenario.ts';
import { schemaChannelToml, type Target } from './servers.ts';
import { within } from './wait.ts';

export const HISTORY = 10_000;
const SIZES = [100, 1000] as const;
const STEP_MS = 30_000;
// After a fill: let the last frames' work settle before reading RSS.
export const SETTLE_MS = 250;

/** Why a list of message frames is not seqs after+1..after+HISTORY of `channel` in order, or undefined. */
function disorder(frames: readonly string[], channel: string, after: number): string | undefined {
  if (frames.length !== HISTORY) return `${num(frames.length)} of ${num(HISTORY)} messages`;
  for (const [i, text] of frames.entries()) {
    const frame = JSON.parse(text) as { channel?: string; seq?: number };
    if (frame.channel !== channel || frame.seq !== after + i + 1) return `message ${i + 1} is ${text.slice(0, 80)}`;
  }
  return undefined;
}

// A fill, or a backlog written while the bridge is down, has no client to wait for: its credit is always ahead.
const NO_WAIT: Credit = { progress: () => Number.MAX_SAFE_INTEGER, nextProgress: () => Promise.resolve() };

/** A fresh socket subscribed to `channel` (from `since`) collecting frames; `done()`: when the HISTORY-th came. */
async function watch(target: Target, channel: string, since?: Subscription['since']) {
  const socket = await openMux(target.rootUrls(1)[0] ?? '', STEP_MS);
  const frames: string[] = [];
  const last = Promise.withResolvers<number>();
  const collect = (text: string) => {
    if (frames.push(text) === HISTORY) last.resolve(performance.now());
  };
  const started = performance.now();
  try {
    const [answer] = await socket.subscribe([{ channel, ...(since === undefined ? {} : { since }) }], collect, STEP_MS);
    const subscribedMs = performance.now() - started;
    const done = () => within(last.promise, STEP_MS, `${num(HISTORY)} messages`);
    return { socket, frames, answer, started, subscribedMs, done };
  } catch (error) {
    await socket.close();
    throw error;
  }
}

/** Sends HISTORY notifications of `size` bytes to `channel` via `via`, paced by nobody; when the first went. */
export function sendHistory(context: s.Context, channel: string, size: number, via: NotifyFunction = 'pg_notify') {
  const { windowBytes, notifier } = context.rig;
  const plan = { channel, via, run: 0, count: HISTORY, size, windowBytes, credit: NO_WAIT, deadlineMs: STEP_MS };
  return notifier.burst(plan);
}

/**
 * Fills `channel` with HISTORY notifications while a fresh socket watches them arrive: the position it
 * started from (`since`), the frames as sent live, and from the first send to the last frame (liveMs).
 */
export async function fill(context: s.Context, target: Target, channel: string, size: number, via?: NotifyFunction) {
  const watcher = await watch(target, channel);
  try {
    const sent = await sendHistory(context, channel, size, via);
    // firstSendMs is this process's clock() (bench/notifier.ts): performance.timeOrigin + performance.now().
    const liveMs = (await watcher.done()) - (sent.firstSendMs - performance.timeOrigin);
    const since = { epoch: watcher.answer?.epoch ?? '', seq: watcher.answer?.seq ?? Number.NaN };
    return { since, live: watcher.frames, liveMs, problem: disorder(watcher.frames, channel, since.seq) };
  } finally {
    await watcher.socket.close();
  }
}

/** The position a fresh socket subscribing to `channel` on `target` is given: the channel's head there. */
export async function headOf(target: Target, channel: string): Promise<Subscribed> {
  const watcher = await watch(target, channel);
  await watcher.socket.close();
  return watcher.answer ?? { epoch: '', seq: Number.NaN };
}

/**
 * Resumes `channel` from `since` on a fresh socket and waits for HISTORY messages: times from the subscribe,
 * when the last came (`lastAt`, performance.now()), RSS then, and what differed from `live` (if given).
 */
export async function replayOnce(target: Target, channel: string, since: Subscribed, live?: readonly string[]) {
  const replaying = await watch(target, channel, { epoch: since.epoch, seq: since.seq });
  try {
    const { answer, frames, started, subscribedMs } = replaying;
    const lastAt = answer?.recovered === true ? await replaying.done() : Number.NaN;
    const rssKb = target.rssKb();
    const differs = live === undefined ? -1 : frames.findIndex((frame, i) => frame !== live[i]);
    const problem =
      answer?.recovered !== true || answer.seq !== since.seq
        ? `answered recovered: ${answer?.recovered}, seq ${answer?.seq}`
        : differs >= 0
          ? `replayed frame ${differs + 1} differs from the live one`
          : disorder(frames, channel, since.seq);
    return { subscribedMs, lastMs: lastAt - started, lastAt, rssKb, problem };
  } finally {
    await replaying.socket.close();
  }
}

/** How much the same fill grows a fresh server's RSS on a channel without history. */
async function growthWithoutHistory(context: s.Context, size: number): Promise<number> {
  const channel = `bench_nohistory_${size}`;
  await using target = await s.startOursFor(context, { toml: schemaChannelToml(channel) });
  const empty = target.rssKb();
  await fill(context, target, channel, size);
  await Bun.sleep(SETTLE_MS);
  return target.rssKb() - empty;
}

/** One payload size: the fill seen live, the server's memory and own account of the history, the replays. */
async function measureSize(context: s.Context, size: number, rounds: number) {
  const growthWithoutKb = await growthWithoutHistory(context, size);
  const channel = `bench_history_${size}`;
  await using target = await s.startOursFor(context, {
    toml: schemaChannelToml(channel, { settings: { history: HISTORY } }),
  });
  const rssEmptyKb = target.rssKb();
  const filled = await fill(context, target, channel, size);
  await Bun.sleep(SETTLE_MS);
  const rssFilledKb = target.rssKb();
  const held = {
    messages: await target.metric(`pgws_history_messages{channel="${channel}"}`),
    bytes: await target.metric(`pgws_history_bytes{channel="${channel}"}`),
  };
  const replays: Awaited<ReturnType<typeof replayOnce>>[] = [];
  // A fresh channel: its head is 0, so the replay is the whole history.
  const problem = filled.since.seq === 0 ? filled.problem : `the fresh channel's head is ${filled.since.seq}, not 0`;
  for (let round = 1; round <= rounds && problem === undefined; round++) {
    context.say(`multiplexed: replay of ${num(HISTORY)} × ${bytes(size)}, run ${round}/${rounds}`);
    replays.push(await replayOnce(target, channel, filled.since, filled.live));
  }
  const { liveMs } = filled;
  return { size, liveMs, rssEmptyKb, rssFilledKb, growthWithoutKb, held, replays, problem };
}

type SizeResult = Awaited<ReturnType<typeof measureSize>>;

const lastMs = (r: SizeResult) => s.middle(r.replays, (x) => x.lastMs)?.lastMs;
const exact = (r: SizeResult) => r.replays.filter((x) => x.problem === undefined).length;

const COLUMNS: readonly Column<SizeResult>[] = [
  ['payload', (r) => bytes(r.size)],
  ['messages', () => num(HISTORY)],
  ['replays exact', (r) => `${exact(r)} / ${r.replays.length}`],
  ['to subscribed ms', (r) => ms(s.middle(r.replays, (x) => x.subscribedMs)?.subscribedMs)],
  ['to last ms', (r) => ms(lastMs(r))],
  ['to last ms per run', (r) => (r.replays.length < 2 ? '' : r.replays.map((x) => ms(x.lastMs)).join(' · '))],
  ['messages/s', (r) => num(HISTORY / ((lastMs(r) ?? Number.NaN) / 1000))],
  ['live ms (baseline)', (r) => ms(r.liveMs)],
  ['× live', (r) => times(r.liveMs / (lastMs(r) ?? Number.NaN))],
  ['held (server)', ({ held }) => `${num(held.messages)} / ${num((held.bytes ?? Number.NaN) / 2 ** 20, 1)} MB`],
  ['RSS empty MB', (r) => mb(r.rssEmptyKb)],
  ['RSS filled MB', (r) => mb(r.rssFilledKb)],
  ['fill without history: growth MB', (r) => mb(r.growthWithoutKb)],
  ['history ≈ MB', (r) => mb(r.rssFilledKb - r.rssEmptyKb - r.growthWithoutKb)],
  ['RSS peak MB', (r) => mb(Math.max(r.rssFilledKb, ...r.replays.map((x) => x.rssKb)))],
];

/** Runs the replay part of the multiplexed scenario. */
export async function replay(context: s.Context): Promise<s.Outcome> {
  const rounds = context.quick ? 2 : 5;
  const results: SizeResult[] = [];
  for (const size of SIZES) results.push(await measureSize(context, size, rounds));
  const problems = results.flatMap((r) => [
    ...(r.problem === undefined ? [] : [`- ${bytes(r.size)}: live fill: ${r.problem}`]),
    ...r.replays.flatMap((x, i) => (x.problem === undefined ? [] : [`- ${bytes(r.size)}, run ${i + 1}: ${x.problem}`])),
  ]);
  const title = `Multiplexed: replay of a full ${num(HISTORY)}-message history to a resuming client`;
  return {
    sections: [
      section(title, COLUMNS, results, [
        `A fresh server per payload size with \`history = ${num(HISTORY)}\` on one schema channel. Live = the same ${num(HISTORY)} notifications reaching the watching socket (first NOTIFY sent → last frame, 4 producer connections): the database's pace, what a client that had to wait for them again would spend. A replay subscribes with \`since: {epoch, seq: 0}\` on a fresh socket; "to last" is the median of ${rounds} runs, from sending the subscribe to the ${num(HISTORY)}th message, read in the orchestrator process. Held = the server's own account on /metrics (pgws_history_messages / pgws_history_bytes, payload text in UTF-16 code units). RSS filled − RSS empty is the history plus whatever heap the 10,000 notifications' processing left behind (RSS seldom shrinks after a GC); the same fill on a channel without history, on another fresh server, measures the latter, and history ≈ the difference (allocator noise included). RSS peak = the largest reading, each taken as a replay's last message arrived.`,
        ...problems,
      ]),
    ],
    targets: results.map((r) => {
      const good = r.problem === undefined && r.replays.length > 0 && exact(r) === r.replays.length;
      return check(
        `replay of a full ${num(HISTORY)}-message history, ${bytes(r.size)}: recovered, seqs 1..${num(HISTORY)} in order, as sent live`,
        `${exact(r)} of ${r.replays.length} replays; median ${ms(lastMs(r))} ms to the last`,
        good ? 1 : 0,
        { min: 1 },
      );
    }),
  };
}
