/**
 * What the clients of one process received in a case: unique, duplicated and reordered frames, every
 * frame's latency, and the notifier's credit (the count every open client has reached, in steps). A
 * client meant to get a share earns credit as `unique × modulus`, so the window means the same for all.
 * The hot path, `receive`, is two indexOf calls, a bit test and a typed-array store.
 */
import { createSamples, encodeHistogram } from './histogram.ts';
import { type MessageParts, readMessage } from './mux-client.ts';
import type { Arm } from './pool.ts';

/**
 * A client receives the notifications whose group floor(SEQ / producers) % modulus is key; multiplexed,
 * each channel's (lane's) server seq goes on from `lanes`, consecutively unless filtered.
 */
export interface Share {
  readonly modulus: number;
  readonly key: number;
  readonly lanes?: readonly number[];
  readonly consecutive?: boolean;
}

/** A new client's counters; opaque to callers, who hand it back on every frame. */
const newClient = (share: Share) => ({
  open: true,
  /** Forgotten between cases: late events for it are ignored. */
  retired: false,
  modulus: share.modulus,
  key: share.key,
  expected: 0,
  unique: 0,
  duplicated: 0,
  reordered: 0,
  seen: new Uint8Array(0),
  /** The last sequence number per producer: each producer's notifications arrive in commit order. */
  last: new Int32Array(0),
  /** The credit level reached, and the `unique` count that reaches the next. */
  level: 0,
  nextAt: 0,
  lanes: share.lanes === undefined ? undefined : Float64Array.from(share.lanes),
  consecutive: share.consecutive ?? true,
});

export type Client = ReturnType<typeof newClient>;

const STRAY_TEXT = 200;

/** The unsigned decimal (digits, optionally a fraction) at `i`, without slicing; NaN if none. */
function numberAt(text: string, i: number): number {
  let value = 0;
  let digits = 0;
  let code = text.charCodeAt(i);
  for (; code >= 48 && code <= 57; code = text.charCodeAt(++i), digits++) value = value * 10 + (code - 48);
  if (code === 46) {
    let scale = 0.1;
    for (code = text.charCodeAt(++i); code >= 48 && code <= 57; code = text.charCodeAt(++i), scale /= 10)
      value += (code - 48) * scale;
  }
  return digits === 0 ? Number.NaN : value;
}

/** What one process's clients saw in one case. */
export type GeneratorReport = ReturnType<ReturnType<typeof createTracker>['report']>;

/** `onProgress(count)`: every open client has now received at least `count` notifications of the run. */
export function createTracker(onProgress: (run: number, count: number) => void) {
  const clients: Client[] = [];
  let run = -1;
  let expected = 0;
  let producers = 1;
  let step = 1;
  // reached[k]: open clients that have reached credit level k. Level k means "has everything of its
  // share up to notification min(k * step, expected)"; the top level, only reached by a complete client.
  let reached = new Int32Array(1);
  let top = 0;
  let level = 0;
  let stray = 0;
  let firstStray: string | undefined;
  let seqBreaks = 0;
  let closes: Record<string, number> = {};
  let lastReceiveMs = 0;
  let latency = createSamples(0);
  let open = 0;
  const parts: MessageParts = { seq: 0, payloadAt: 0 };

  // Of notifications 0..expected-1, those in groups key, key + modulus, … (a group is `producers` SEQs).
  const shareOf = (client: Client) => {
    let share = 0;
    for (let group = client.key; group * producers < expected; group += client.modulus)
      share += Math.min(producers, expected - group * producers);
    return share;
  };
  // The level a unique count stands for (unique × modulus notifications), below the top until complete.
  const levelOf = (client: Client, unique: number) =>
    unique >= client.expected ? top : Math.min(top - 1, Math.floor((unique * client.modulus) / step));
  const nextAtOf = (client: Client) =>
    client.level >= top
      ? Number.POSITIVE_INFINITY
      : Math.min(client.expected, Math.ceil(((client.level + 1) * step) / client.modulus));
  const advance = () => {
    const before = level;
    while (level < top && open > 0 && reached[level + 1]! >= open) level += 1;
    if (level !== before) onProgress(run, Math.min(level * step, expected));
  };
  // Off the hot path: only when a client's unique count reaches `nextAt`.
  const climb = (client: Client) => {
    const next = levelOf(client, client.unique);
    for (let k = client.level + 1; k <= next; k++) reached[k]! += 1;
    client.level = next;
    client.nextAt = nextAtOf(client);
    advance();
  };
  const reset = (client: Client) => {
    client.expected = shareOf(client);
    client.unique = 0;
    client.duplicated = 0;
    client.reordered = 0;
    client.seen = new Uint8Array(Math.ceil(expected / 8));
    client.last = new Int32Array(producers).fill(-1);
    client.level = 0;
    client.nextAt = nextAtOf(client);
    // A client whose share is empty is complete from the start.
    if (client.open && client.expected === 0) climb(client);
  };
  const strayFrame = (frame: string) => {
    stray += 1;
    firstStray ??= frame.slice(0, STRAY_TEXT);
  };

  // The payload starts at `at` with `{"r":`; a schema channel re-serialises it in the same key order.
  const count = (client: Client, frame: string, at: number, nowMs: number, serverSeq: number) => {
    const seqAt = frame.indexOf('"seq":', at + 5);
    const tAt = frame.indexOf('"t":', seqAt);
    if (seqAt < 0 || tAt < 0 || numberAt(frame, at + 5) !== run) return strayFrame(frame);
    const seq = numberAt(frame, seqAt + 6);
    const group = Math.floor(seq / producers);
    if (!(seq >= 0 && seq < expected) || group % client.modulus !== client.key) return strayFrame(frame);
    lastReceiveMs = nowMs;
    latency.add(nowMs - numberAt(frame, tAt + 4));
    const { lanes } = client;
    if (lanes !== undefined) {
      const lane = group % lanes.length;
      const previous = lanes[lane]!;
      if (client.consecutive ? serverSeq !== previous + 1 : !(serverSeq > previous)) seqBreaks += 1;
      lanes[lane] = serverSeq;
    }
    const byte = seq >>> 3;
    const bit = 1 << (seq & 7);
    if ((client.seen[byte]! & bit) !== 0) {
      client.duplicated += 1;
      return;
    }
    client.seen[byte]! |= bit;
    client.unique += 1;
    const producer = seq % producers;
    if (seq < client.last[producer]!) client.reordered += 1;
    else client.last[producer] = seq;
    if (client.open && client.unique >= client.nextAt) climb(client);
  };

  return {
    /** Adds a client (open, and subscribed if multiplexed). */
    add(share: Share): Client {
      const client = newClient(share);
      clients.push(client);
      open += 1;
      reset(client);
      return client;
    },
    /** A client went away: its close code is counted and it no longer holds the credit back. */
    closed(client: Client, code: number) {
      if (client.retired || !client.open) return;
      client.open = false;
      open -= 1;
      closes[code] = (closes[code] ?? 0) + 1;
      // Its levels no longer count: take them back, then the others may be complete.
      for (let k = 1; k <= client.level; k++) reached[k]! -= 1;
      advance();
    },
    arm(next: Arm) {
      ({ run, expected, producers, step } = next);
      top = Math.ceil(expected / step);
      reached = new Int32Array(top + 1);
      level = 0;
      stray = 0;
      firstStray = undefined;
      seqBreaks = 0;
      closes = {};
      lastReceiveMs = 0;
      // Server seqs go on across runs: the lanes are not reset.
      for (const client of clients) reset(client);
      latency = createSamples(clients.reduce((sum, c) => sum + c.expected, 0));
    },
    /** Forgets every client (after they were closed). */
    clear() {
      for (const client of clients) client.retired = true;
      clients.length = 0;
      open = 0;
    },
    /** A plain frame: the payload itself. */
    receive(client: Client, frame: string, nowMs: number) {
      if (!client.retired) count(client, frame, 0, nowMs, 0);
    },
    /** A multiplexed frame: a `message` whose `payload` is the payload, or anything else (stray). */
    receiveMessage(client: Client, frame: string, nowMs: number) {
      if (client.retired) return;
      if (readMessage(frame, parts)) count(client, frame, parts.payloadAt, nowMs, parts.seq);
      else strayFrame(frame);
    },
    /** Distinct frames of the run received so far, all clients together. */
    received: () => clients.reduce((sum, c) => sum + c.unique, 0),
    /** Sums over the clients; `incomplete`: clients short of their share; `stray`: frames not of this run. */
    report() {
      const sum = (pick: (c: Client) => number) => clients.reduce((n, c) => n + pick(c), 0);
      return {
        expected: sum((c) => c.expected),
        unique: sum((c) => c.unique),
        duplicated: sum((c) => c.duplicated),
        reordered: sum((c) => c.reordered),
        incomplete: sum((c) => (c.unique < c.expected ? 1 : 0)),
        stray,
        firstStray,
        seqBreaks,
        closes,
        lastReceiveMs,
        latency: encodeHistogram(latency.histogram()),
      };
    },
  };
}
