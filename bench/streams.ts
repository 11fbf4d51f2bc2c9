/**
 * Streams beside sockets, in one run on one server process: fan-out to 1,000 `GET /events` streams beside
 * 1,000 plain and 1,000 multiplexed WebSockets; server memory per idle stream beside per idle socket (a fresh
 * process per transport); and `POST /channels/C/messages` publishes per second beside `publish` frames per
 * second at the same number in flight.
 *
 * The stream clients are the benchmark's own generators (bench/clients.ts, unchanged), started a second time
 * with this file preloaded: in those processes `WebSocket` is {@link SseSocket}, which opens `GET /events` for
 * the channels a multiplexed client subscribes to and hands the generator the same pgws.v1 frames, so the
 * tracker checks loss, order and seqs exactly as for sockets. It reads the HTTP/1.1 chunked response over a
 * raw TCP socket, as lean as the generators' WebSocket clients are.
 */
import { type Socket, connect as tcpConnect } from 'node:net';
import { type Fleet, startFleet } from './fleet.ts';
import { openSocket } from './mux-socket.ts';
import { cpuMeter } from './procstat.ts';
import {
  anomalies,
  type Context,
  clean,
  integrityCells,
  median,
  type Outcome,
  TAIL_HEADERS,
  tailCells,
} from './scenario.ts';
import { SCHEMA_CHANNEL, startOurs } from './servers.ts';
import { check, ms, num, ratio, type TargetCheck, times } from './stats.ts';
import type { Target } from './target.ts';
import { runTrial, type TrialResult } from './trial.ts';

const GENERATOR_ENV = 'PGWS_BENCH_SSE_GENERATOR';
const PUBLISH_CHANNEL = 'bench_publish';
const CLIENTS = 1000;

/**
 * A WebSocket as bench/clients.ts uses one, carried by `GET /events`: `ready` at once, then one stream for the
 * channels of the subscribe frames sent after it, each Server-Sent Event handed on as the pgws.v1 frame it
 * re-frames (`subscribed` with the subscribe's `id`, `message` with its `"type"` put back).
 */
class SseSocket {
  readyState = 0;
  readonly protocol = 'pgws.v1';
  onmessage: ((event: { data: string }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: ((event: { message: string }) => void) | null = null;
  private readonly target: URL;
  private readonly ids = new Map<string, number>();
  private socket: Socket | undefined;

  constructor(url: string) {
    this.target = new URL(url);
    queueMicrotask(() => {
      this.readyState = 1;
      this.onmessage?.({ data: '{"type":"ready","subject":null,"expires":null}' });
    });
  }

  send(text: string): void {
    const frame = JSON.parse(text) as { type: string; id: number; channel: string };
    if (frame.type !== 'subscribe') return;
    if (this.ids.size === 0) queueMicrotask(() => this.open());
    this.ids.set(frame.channel, frame.id);
  }

  close(code = 1000): void {
    this.socket?.destroy();
    this.closed(code, '');
  }

  private closed(code: number, reason: string): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  private open(): void {
    const query = [...this.ids.keys()].map((channel) => `channel=${encodeURIComponent(channel)}`).join('&');
    const socket = tcpConnect(Number(this.target.port), this.target.hostname);
    this.socket = socket;
    // The benchmark's payloads and channel names are ASCII: a character is a byte, as chunk sizes count.
    socket.setEncoding('latin1');
    socket.write(`GET /events?${query} HTTP/1.1\r\nHost: ${this.target.host}\r\nAccept: text/event-stream\r\n\r\n`);
    let text = '';
    let head = true;
    let left = 0;
    let events = '';
    socket.on('data', (chunk: string) => {
      text += chunk;
      let at = 0;
      if (head) {
        const end = text.indexOf('\r\n\r\n');
        if (end === -1) return;
        const status = text.slice(9, 12);
        // The same words as Bun's WebSocket client, which bench/clients.ts reads for a 503 to retry.
        if (status !== '200') return this.fail(`Expected 101 status code: ${status}`);
        head = false;
        at = end + 4;
      }
      // HTTP/1.1 chunked coding (RFC 9112 §7.1): size line, data, CRLF; `left` -1 waits for that CRLF.
      for (;;) {
        if (left === 0) {
          const eol = text.indexOf('\r\n', at);
          if (eol === -1) break;
          left = Number.parseInt(text.slice(at, eol), 16);
          at = eol + 2;
          if (left === 0) return this.closed(1006, 'the stream ended');
        }
        if (left === -1) {
          if (text.length - at < 2) break;
          at += 2;
          left = 0;
          continue;
        }
        const take = Math.min(left, text.length - at);
        events += text.slice(at, at + take);
        at += take;
        left -= take;
        if (left > 0) break;
        left = -1;
      }
      text = text.slice(at);
      events = this.dispatch(events);
    });
    socket.on('error', (error) => this.fail(error.message));
    socket.on('close', () => this.closed(1006, 'the connection closed'));
  }

  /** Hands on each whole event; returns what is left of an unfinished one. */
  private dispatch(events: string): string {
    let from = 0;
    for (let end = events.indexOf('\n\n'); end !== -1; end = events.indexOf('\n\n', from)) {
      const block = events.slice(from, end);
      from = end + 2;
      const data = block.indexOf('\ndata: ');
      if (data === -1) continue;
      if (block.startsWith('event: message')) {
        this.onmessage?.({ data: `{"type":"message",${block.slice(data + 8)}` });
      } else if (block.startsWith('event: subscribed')) {
        const answer = JSON.parse(block.slice(data + 7)) as { channel: string };
        this.onmessage?.({ data: JSON.stringify({ type: 'subscribed', id: this.ids.get(answer.channel), ...answer }) });
      }
    }
    return events.slice(from);
  }

  private fail(message: string): void {
    this.onerror?.({ message });
    this.socket?.destroy();
    this.closed(1006, message);
  }
}

if (process.env[GENERATOR_ENV] === '1') (globalThis as { WebSocket: unknown }).WebSocket = SseSocket;

/** The benchmark's generators again, with {@link SseSocket} for their WebSocket. */
async function startStreamFleet(size: number): Promise<Fleet> {
  const saved = { options: process.env['BUN_OPTIONS'], flag: process.env[GENERATOR_ENV] };
  // Only the generators spawned now inherit these; every other process of the run is started without them.
  process.env['BUN_OPTIONS'] = `--preload ${import.meta.path}`;
  process.env[GENERATOR_ENV] = '1';
  try {
    return await startFleet(size);
  } finally {
    for (const [key, value] of [
      ['BUN_OPTIONS', saved.options],
      [GENERATOR_ENV, saved.flag],
    ] as const) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
}

type Variant = 'plain' | 'multiplexed' | 'sse';
const LABELS: Readonly<Record<Variant, string>> = {
  plain: 'plain WebSockets',
  multiplexed: 'multiplexed WebSockets',
  sse: 'GET /events streams (SSE)',
};

/** One trial of `variant`: 1,000 clients on the schema channel, `count` notifications of `size` bytes. */
function fanTrial(context: Context, streams: Fleet, target: Target, variant: Variant, count: number, size: number) {
  const { rig } = context;
  const mux = { channels: [SCHEMA_CHANNEL], filterField: undefined };
  return runTrial(variant === 'sse' ? { ...rig, fleet: streams } : rig, {
    label: LABELS[variant],
    target,
    channel: SCHEMA_CHANNEL,
    clients: CLIENTS,
    size,
    send: { kind: 'burst', count },
    ...(variant === 'plain' ? {} : { mux, urls: target.rootUrls(rig.addresses) }),
  });
}

const serverNsPerFrame = (r: TrialResult) => (r.received > 0 ? (r.cpu.seconds.server * 1e9) / r.received : undefined);
const kbPerConnection = (r: TrialResult) => (r.connected > 0 ? (r.rssIdleKb - r.rssEmptyKb) / r.connected : undefined);

/** Completed publishes per second: `count` of them, `inFlight` at a time, through `one`. */
async function rate(count: number, inFlight: number, one: () => Promise<boolean>) {
  let next = 0;
  let failed = 0;
  const started = performance.now();
  const lane = async () => {
    while (next < count) {
      next += 1;
      if (!(await one())) failed += 1;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  return { perSecond: count / ((performance.now() - started) / 1000), failed };
}

/** `count` POSTs of 100 B, `inFlight` at a time (fetch keeps its connections alive). */
function postRate(target: Target, count: number, inFlight: number) {
  const url = `http://127.0.0.1:${target.port}/channels/${PUBLISH_CHANNEL}/messages`;
  const body = 'x'.repeat(100);
  return rate(count, inFlight, async () => {
    const response = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'text/plain' } });
    await response.arrayBuffer();
    return response.ok;
  });
}

/** `count` publish frames of 100 B over 4 multiplexed sockets, `inFlight` unanswered at a time. */
async function frameRate(target: Target, count: number, inFlight: number) {
  const sockets = await Promise.all(target.rootUrls(4).map((url) => openSocket(url)));
  const waiting = new Map<number, (ok: boolean) => void>();
  for (const socket of sockets) {
    socket.onFrame = (text) => {
      const answer = JSON.parse(text) as { type: string; id: number };
      waiting.get(answer.id)?.(answer.type === 'published');
      waiting.delete(answer.id);
    };
  }
  let id = 0;
  const payload = 'x'.repeat(100);
  try {
    return await rate(count, inFlight, () => {
      const mine = ++id;
      const { promise, resolve } = Promise.withResolvers<boolean>();
      waiting.set(mine, resolve);
      sockets[mine % sockets.length]?.send({ type: 'publish', id: mine, channel: PUBLISH_CHANNEL, payload });
      return promise;
    });
  } finally {
    await Promise.all(sockets.map((socket) => socket.close()));
  }
}

/** Runs the streams scenario. */
export async function streams(context: Context): Promise<Outcome> {
  const { rig, say, quick } = context;
  const repetitions = quick ? 1 : 3;
  const sizes = quick ? [100] : [100, 7900];
  const streamFleet = await startStreamFleet(rig.fleet.pids.length);
  const start = (label: string) =>
    startOurs({
      databaseUrl: rig.db.url,
      label,
      profileDir: context.profileDir,
      // Every publish is measured, none refused: the rate limit is another table's business.
      server: { publish_rate: 100_000 },
      channelsToml: `\n[channels.${PUBLISH_CHANNEL}]\npublish = true\n`,
    });
  const fan: { variant: Variant; size: number; results: TrialResult[] }[] = [];
  const memory: { variant: Variant; result: TrialResult }[] = [];
  let publishes: Publishes | undefined;
  try {
    const target = await start('ours');
    try {
      for (const size of sizes) {
        const count = Math.round((size <= 100 ? (quick ? 200_000 : 3_000_000) : quick ? 20_000 : 400_000) / CLIENTS);
        for (const variant of ['plain', 'multiplexed', 'sse'] as const) fan.push({ variant, size, results: [] });
        for (let run = 1; run <= repetitions; run++) {
          // The variants take turns, so a slow spell of the shared machine does not fall on one alone.
          for (const cell of fan.filter((c) => c.size === size)) {
            say(`streams: ${LABELS[cell.variant]}, ${num(CLIENTS)} clients, ${num(size)} B, run ${run}/${repetitions}`);
            cell.results.push(await fanTrial(context, streamFleet, target, cell.variant, count, size));
          }
        }
      }
      const total = quick ? 4000 : 20_000;
      say(`streams: ${num(total)} POST /channels/C/messages beside ${num(total)} publish frames, 64 in flight`);
      const postCpu = cpuMeter(() => target.processes());
      const post = await postRate(target, total, 64);
      const postNs = (postCpu().seconds * 1e9) / total;
      const frameCpu = cpuMeter(() => target.processes());
      const frames = await frameRate(target, total, 64);
      publishes = { post, frames, postNs, frameNs: (frameCpu().seconds * 1e9) / total };
    } finally {
      await target.stop();
    }
    // Memory: a fresh process per transport, so each starts from the same empty heap.
    const idle = quick ? 1000 : 5000;
    for (const variant of ['plain', 'multiplexed', 'sse'] as const) {
      say(`streams: memory, ${num(idle)} idle ${LABELS[variant]}`);
      const fresh = await start(`ours, ${variant}`);
      try {
        const trial = await runTrial(variant === 'sse' ? { ...rig, fleet: streamFleet } : rig, {
          label: LABELS[variant],
          target: fresh,
          channel: SCHEMA_CHANNEL,
          clients: idle,
          size: 100,
          send: { kind: 'burst', count: 1 },
          ...(variant === 'plain'
            ? {}
            : { mux: { channels: [SCHEMA_CHANNEL], filterField: undefined }, urls: fresh.rootUrls(rig.addresses) }),
        });
        memory.push({ variant, result: trial });
      } finally {
        await fresh.stop();
      }
    }
  } finally {
    await streamFleet.stop();
  }
  return report(fan, memory, publishes, repetitions);
}

/** The two publish rates, and the server's CPU time per publish of each. */
interface Publishes {
  readonly post: { readonly perSecond: number; readonly failed: number };
  readonly frames: { readonly perSecond: number; readonly failed: number };
  readonly postNs: number;
  readonly frameNs: number;
}

function report(
  fan: readonly { variant: Variant; size: number; results: TrialResult[] }[],
  memory: readonly { variant: Variant; result: TrialResult }[],
  publishes: Publishes | undefined,
  repetitions: number,
): Outcome {
  const targets: TargetCheck[] = [];
  const notes: string[] = [];
  const rows = fan.map((cell) => {
    const result = median(cell.results);
    const plain = median(fan.find((c) => c.size === cell.size && c.variant === 'plain')?.results ?? []);
    if (result === undefined) return [LABELS[cell.variant]];
    notes.push(...cell.results.flatMap((r) => anomalies(r, `${LABELS[cell.variant]}, ${num(cell.size)} B`)));
    const versus = cell.variant === 'plain' ? undefined : ratio(result.framesPerSecond, plain?.framesPerSecond);
    if (cell.variant === 'sse' && plain !== undefined) {
      const exact = cell.results.every(clean);
      targets.push(
        check(
          `${num(CLIENTS)} SSE streams ≥ 0.8 × ${num(CLIENTS)} plain WebSocket clients, nothing lost or reordered, ${num(cell.size)} B`,
          `${num(result.framesPerSecond)} vs ${num(plain.framesPerSecond)} frames/s; ${exact ? 'exact' : 'NOT exact'} over ${repetitions} runs`,
          versus,
          { min: 0.8 },
          exact,
        ),
      );
    }
    return [
      LABELS[cell.variant],
      `${num(cell.size)} B`,
      ...integrityCells(result),
      num(result.seqBreaks),
      num(result.framesPerSecond),
      times(versus),
      num(serverNsPerFrame(result)),
      ...tailCells(result),
    ];
  });
  const plainKb = memory.find((m) => m.variant === 'plain')?.result;
  const memoryRows = memory.map(({ variant, result }) => [
    LABELS[variant],
    num(result.connected),
    num(result.rssEmptyKb / 1024, 1),
    num(result.rssIdleKb / 1024, 1),
    num(kbPerConnection(result), 1),
    times(ratio(kbPerConnection(result), plainKb === undefined ? undefined : kbPerConnection(plainKb))),
    `${num(result.received)} / ${num(result.expected)}`,
  ]);
  const publishRows = ({ post, frames, postNs, frameNs }: Publishes) => [
    [
      'POST /channels/C/messages (fetch, keep-alive)',
      num(post.perSecond),
      num(post.failed),
      ms(postNs / 1000),
      times(ratio(post.perSecond, frames.perSecond)),
    ],
    ['publish frames (4 multiplexed sockets)', num(frames.perSecond), num(frames.failed), ms(frameNs / 1000), ''],
  ];
  return {
    targets,
    sections: [
      {
        title: `Streams: fan-out to ${num(CLIENTS)} GET /events streams beside ${num(CLIENTS)} WebSockets, as fast as possible`,
        headers: [
          'clients',
          'payload',
          'connected',
          'received / expected',
          'lost',
          'dup',
          'reord',
          'seq breaks',
          'frames/s',
          '× plain',
          'srv ns / frame',
          ...TAIL_HEADERS,
        ],
        rows,
        notes: [
          `Median of ${repetitions} run${repetitions === 1 ? '' : 's'} by frames/s, the three taking turns on one server process, on the schema channel. The stream clients are the same generator processes and tracker as the sockets' (bench/clients.ts), their WebSocket replaced by a raw-TCP reader of the SSE response (bench/streams.ts), so loss, order and seqs are checked alike. srv ns / frame = the server's CPU time over the send-and-drain phase ÷ frames received: what a frame costs the server, which frames/s alone cannot say while the generators are the bottleneck.`,
          ...notes,
        ],
      },
      {
        title: 'Streams: server memory per idle stream beside per idle socket',
        headers: ['clients', 'connected', 'RSS empty MB', 'RSS idle MB', 'KB / conn', '× plain', 'received / expected'],
        rows: memoryRows,
        notes: [
          'A fresh server process per row: KB / conn = (RSS with the clients connected and idle − RSS of the empty process) ÷ clients. A stream is a session like a multiplexed socket (its subscriptions, its cursor) plus an HTTP response body and its queue.',
        ],
      },
      {
        title: 'Streams: POST /channels/C/messages beside publish frames',
        headers: ['publishes via', 'publishes/s', 'refused', 'srv µs / publish', '× publish frames'],
        rows: publishes === undefined ? [] : publishRows(publishes),
        notes: [
          '64 publishes in flight either way, 100 B to a raw channel with publish = true, publish_rate raised out of the way; each is answered once pg_notify has returned, so both wait on the same database round trip. The client is the benchmark process itself.',
        ],
      },
    ],
  };
}
