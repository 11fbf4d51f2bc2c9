/**
 * Streams beside sockets, in one run on one server process: fan-out to 1,000 `GET /events` streams beside
 * 1,000 plain and 1,000 multiplexed WebSockets (the cases taking turns); server memory per idle stream beside
 * per idle socket (a fresh process per transport); and `POST /channels/C/messages` publishes per second beside
 * `publish` frames per second at the same number in flight.
 *
 * The stream clients are the benchmark's own client processes (bench/generator.ts, unchanged), a second pool
 * started with this file preloaded: in those processes `WebSocket` is {@link SseSocket}, which opens
 * `GET /events` for the channels a multiplexed client subscribes to and hands it the same pgws.v1 frames, so the
 * tracker checks loss, order and seqs exactly as for sockets. It reads the HTTP/1.1 chunked response over a raw
 * TCP socket, as lean as the processes' WebSocket clients are.
 */
import { type Socket, connect as tcpConnect } from 'node:net';
import { openMux } from './mux-client.ts';
import { type Pool, startPool } from './pool.ts';
import { cpuMeter } from './procstat.ts';
import { bytes, type Column, check, ms, num, ratio, section, type TargetCheck, times } from './report.ts';
import * as s from './scenario.ts';
import { SCHEMA_CHANNEL, type Target } from './servers.ts';
import { runTrial, type TrialResult, type TrialSpec } from './trial.ts';

const GENERATOR_ENV = 'PGWS_BENCH_SSE_GENERATOR';
const PUBLISH_CHANNEL = 'bench_publish';
const CLIENTS = 1000;
const IN_FLIGHT = 64;

/**
 * A WebSocket as the client processes use one (bench/mux-client.ts), carried by `GET /events`: `ready` at once, then one stream for the
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
        // The same words as Bun's WebSocket client, which bench/generator.ts reads for a 503 to retry.
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

/** The benchmark's client processes again, with {@link SseSocket} for their WebSocket. */
async function startStreamPool(size: number): Promise<Pool> {
  const saved = { options: process.env['BUN_OPTIONS'], flag: process.env[GENERATOR_ENV] };
  // Only the processes spawned now inherit these; every other process of the run is started without them.
  process.env['BUN_OPTIONS'] = `--preload ${import.meta.path}`;
  process.env[GENERATOR_ENV] = '1';
  try {
    return await startPool(size);
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

type Transport = 'plain' | 'multiplexed' | 'sse';
const LABELS: Readonly<Record<Transport, string>> = {
  plain: 'plain WebSockets',
  multiplexed: 'multiplexed WebSockets',
  sse: 'GET /events streams (SSE)',
};
const TRANSPORTS = ['plain', 'multiplexed', 'sse'] as const;

/** A trial of `transport` on the schema channel: the stream pool for `sse`, `pgws.v1` subscribes but for `plain`. */
function trialOf(context: s.Context, streams: Pool, target: Target, transport: Transport, spec: Partial<TrialSpec>) {
  const { rig } = context;
  const subscribe = { channels: [SCHEMA_CHANNEL], filterField: undefined };
  return runTrial(transport === 'sse' ? { ...rig, pool: streams } : rig, {
    label: LABELS[transport],
    target,
    channel: SCHEMA_CHANNEL,
    clients: CLIENTS,
    size: 100,
    send: { kind: 'burst', count: 1 },
    ...(transport === 'plain' ? {} : { urls: target.rootUrls(rig.addresses), connect: { subscribe } }),
    ...spec,
  });
}

/** Completed publishes per second: `count` of them, {@link IN_FLIGHT} at a time, through `one`. */
async function rate(target: Target, count: number, one: () => Promise<boolean>) {
  const cpu = cpuMeter(() => target.processes());
  let next = 0;
  let refused = 0;
  const started = performance.now();
  const lane = async () => {
    for (; next < count; next++) if (!(await one())) refused += 1;
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
  const perSecond = count / ((performance.now() - started) / 1000);
  return { perSecond, refused, serverUs: (cpu().seconds * 1e6) / count };
}

/** 100-byte POSTs (fetch keeps its connections alive). */
function postRate(target: Target, count: number) {
  const url = `http://127.0.0.1:${target.port}/channels/${PUBLISH_CHANNEL}/messages`;
  const body = 'x'.repeat(100);
  return rate(target, count, async () => {
    const response = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'text/plain' } });
    await response.arrayBuffer();
    return response.ok;
  });
}

/** 100-byte publish frames over 4 multiplexed sockets. */
async function frameRate(target: Target, count: number) {
  const sockets = await Promise.all(target.rootUrls(4).map((url) => openMux(url, 10_000)));
  const waiting = new Map<number, (ok: boolean) => void>();
  for (const socket of sockets) {
    socket.ws.onmessage = (event: MessageEvent) => {
      const answer = JSON.parse(event.data as string) as { type: string; id: number };
      waiting.get(answer.id)?.(answer.type === 'published');
      waiting.delete(answer.id);
    };
  }
  let id = 0;
  const payload = 'x'.repeat(100);
  try {
    return await rate(target, count, () => {
      const mine = ++id;
      const answered = Promise.withResolvers<boolean>();
      waiting.set(mine, answered.resolve);
      sockets[mine % sockets.length]?.ws.send(
        JSON.stringify({ type: 'publish', id: mine, channel: PUBLISH_CHANNEL, payload }),
      );
      return answered.promise;
    });
  } finally {
    await Promise.all(sockets.map((socket) => socket.close()));
  }
}

type Publishes = Awaited<ReturnType<typeof rate>>;
type FanRow = s.Runs & { readonly transport: Transport; readonly size: number };
type MemoryRow = { readonly transport: Transport; readonly r: TrialResult };

/** Runs the streams scenario. */
export async function streams(context: s.Context): Promise<s.Outcome> {
  const { rig, say, quick } = context;
  const repetitions = quick ? 1 : 3;
  const sizes = quick ? [100] : [100, 7900];
  const options = {
    // Every publish is measured, none refused: the rate limit is another table's business.
    server: { publish_rate: 100_000 },
    toml: `\n[channels.${PUBLISH_CHANNEL}]\npublish = true\n`,
  };
  await using streamPool = await startStreamPool(rig.pool.pids.length);
  const fan: FanRow[] = [];
  let post: Publishes | undefined;
  let frames: Publishes | undefined;
  {
    await using target = await s.startOursFor(context, options);
    for (const size of sizes) {
      const count = Math.round((size <= 100 ? (quick ? 200_000 : 3_000_000) : quick ? 20_000 : 400_000) / CLIENTS);
      const results = await s.inTurns(TRANSPORTS, repetitions, (transport, round) => {
        say(`streams: ${LABELS[transport]}, ${num(CLIENTS)} × ${bytes(size)}, run ${round}/${repetitions}`);
        return trialOf(context, streamPool, target, transport, { size, send: { kind: 'burst', count } });
      });
      for (const [i, transport] of TRANSPORTS.entries()) {
        const runs = s.runsOf(results[i] ?? []);
        if (runs !== undefined) fan.push({ ...runs, transport, size });
      }
    }
    const total = quick ? 4000 : 20_000;
    say(`streams: ${num(total)} POST /channels/C/messages beside ${num(total)} publish frames, ${IN_FLIGHT} in flight`);
    post = await postRate(target, total);
    frames = await frameRate(target, total);
  }
  // Memory: a fresh process per transport, so each starts from the same empty heap.
  const idle = quick ? 1000 : 5000;
  const memory: MemoryRow[] = [];
  for (const transport of TRANSPORTS) {
    say(`streams: memory, ${num(idle)} idle ${LABELS[transport]}`);
    await using fresh = await s.startOursFor(context, { ...options, label: `ours, ${transport}` });
    memory.push({ transport, r: await trialOf(context, streamPool, fresh, transport, { clients: idle }) });
  }
  return report(fan, memory, { post, frames }, repetitions);
}

const perFrameNs = (r: TrialResult) => (r.received > 0 ? (r.cpu.seconds.server * 1e9) / r.received : undefined);

function report(
  fan: readonly FanRow[],
  memory: readonly MemoryRow[],
  publishes: { post: Publishes | undefined; frames: Publishes | undefined },
  repetitions: number,
): s.Outcome {
  const plainOf = (row: FanRow) => fan.find((x) => x.size === row.size && x.transport === 'plain');
  const versus = (row: FanRow) =>
    row.transport === 'plain' ? undefined : ratio(row.r.framesPerSecond, plainOf(row)?.r.framesPerSecond);
  const targets: TargetCheck[] = fan.flatMap((row) => {
    const plain = plainOf(row);
    if (row.transport !== 'sse' || plain === undefined) return [];
    const runs = [...row.runs, ...plain.runs];
    return [
      check(
        `${num(CLIENTS)} SSE streams ≥ 0.8 × ${num(CLIENTS)} plain WebSocket clients, nothing lost or reordered, ${bytes(row.size)}`,
        `${num(row.r.framesPerSecond)} vs ${num(plain.r.framesPerSecond)} frames/s; ${s.faults(runs)}`,
        versus(row),
        { min: 0.8 },
        runs.every(s.clean),
      ),
    ];
  });
  const fanColumns: Column<FanRow>[] = [
    ['clients', (row) => LABELS[row.transport]],
    ['payload', (row) => bytes(row.size)],
    ...s.INTEGRITY,
    ['seq breaks', ({ r }) => num(r.seqBreaks)],
    ...s.RATE,
    ['× plain', (row) => times(versus(row))],
    ['srv ns / frame', ({ r }) => num(perFrameNs(r))],
    ...s.TAIL,
  ];
  const plainKb = s.kbPerIdleConnection(memory.find((m) => m.transport === 'plain')?.r);
  const memoryColumns: Column<MemoryRow>[] = [
    ['clients', (row) => LABELS[row.transport]],
    ['connected', ({ r }) => num(r.connected)],
    ['RSS empty MB', ({ r }) => num(r.rssEmptyKb / 1024, 1)],
    ['RSS idle MB', ({ r }) => num(r.rssIdleKb / 1024, 1)],
    ['KB / conn', ({ r }) => num(s.kbPerIdleConnection(r), 1)],
    ['× plain', ({ r }) => times(ratio(s.kbPerIdleConnection(r), plainKb))],
    ['received / expected', ({ r }) => s.delivered(r)],
  ];
  const { post, frames } = publishes;
  const publishRows = [
    {
      via: 'POST /channels/C/messages (fetch, keep-alive)',
      p: post,
      versus: ratio(post?.perSecond, frames?.perSecond),
    },
    { via: 'publish frames (4 multiplexed sockets)', p: frames, versus: undefined },
  ];
  const publishColumns: Column<(typeof publishRows)[number]>[] = [
    ['publishes via', (row) => row.via],
    ['publishes/s', (row) => num(row.p?.perSecond)],
    ['refused', (row) => num(row.p?.refused)],
    ['srv µs / publish', (row) => ms(row.p?.serverUs)],
    ['× publish frames', (row) => (row.versus === undefined ? '' : times(row.versus))],
  ];
  return {
    targets,
    sections: [
      section(
        `Streams: fan-out to ${num(CLIENTS)} GET /events streams beside ${num(CLIENTS)} WebSockets, as fast as possible`,
        fanColumns,
        fan,
        [
          `${s.medianOf(repetitions)}, the three transports taking turns on one server process, on the schema channel. The stream clients are the same client processes and tracker as the sockets' (bench/generator.ts), their WebSocket replaced by a raw-TCP reader of the SSE response (bench/streams.ts), so loss, order and seqs are checked alike. srv ns / frame = the server's CPU time over the send-and-drain phase ÷ frames received: what a frame costs the server, which frames/s alone cannot say while the client processes are the bottleneck.`,
          ...new Set(fan.flatMap((row) => s.runNotes(`${LABELS[row.transport]}, ${bytes(row.size)}`, row.runs))),
        ],
      ),
      section('Streams: server memory per idle stream beside per idle socket', memoryColumns, memory, [
        'A fresh server process per row: KB / conn = (RSS with the clients connected and idle − RSS of the empty process) ÷ clients. A stream is a session like a multiplexed socket (its subscriptions, its cursor) plus an HTTP response body and its queue.',
      ]),
      section('Streams: POST /channels/C/messages beside publish frames', publishColumns, publishRows, [
        `${IN_FLIGHT} publishes in flight either way, 100 B to a raw channel with publish = true, publish_rate raised out of the way; each is answered once pg_notify has returned, so both wait on the same database round trip. The client is the benchmark process itself.`,
      ]),
    ],
  };
}
