/**
 * What every client of one generator received in the current case: unique, duplicated and reordered
 * frames (against a bitset of seen sequence numbers), receive times, every frame's latency, and the
 * notifier's credit (bench/notifier.ts): the count every open client has reached, in steps.
 *
 * The hot path is `receive`: two indexOf calls on the frame's prefix, a bit test, a typed-array store.
 */
import { createSamples, encodeHistogram } from './histogram.ts';
import type { ArmCommand, GeneratorReport } from './protocol.ts';

/** One client's counters; opaque to callers, who hand it back on every frame. */
export interface Client {
  open: boolean;
  /** Set when the generator forgot it (between cases); late events for it are ignored. */
  retired: boolean;
  unique: number;
  duplicated: number;
  reordered: number;
  seen: Uint8Array;
  /** The last sequence number per producer: each producer's notifications arrive in commit order. */
  last: Int32Array;
}

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

/** Tracks the clients of one generator. */
export interface Tracker {
  /** Adds a client (already open). */
  add(): Client;
  /** A client went away; its close code is counted and it no longer holds the credit back. */
  closed(client: Client, code: number): void;
  /** Forgets every client (after they were closed). */
  clear(): void;
  arm(command: ArmCommand): void;
  receive(client: Client, frame: string, nowMs: number): void;
  report(): GeneratorReport;
}

/** `onProgress(count)`: every open client has now received at least `count` notifications of the run. */
export function createTracker(onProgress: (run: number, count: number) => void): Tracker {
  const clients: Client[] = [];
  let run = -1;
  let expected = 0;
  let producers = 1;
  let step = 1;
  // reached[k]: open clients whose unique count has reached threshold k (min(k * step, expected)).
  let reached = new Int32Array(1);
  let level = 0;
  let stray = 0;
  let closes: Record<string, number> = {};
  let lastReceiveMs = 0;
  let latency = createSamples(0);
  let open = 0;

  const reset = (client: Client) => {
    client.unique = 0;
    client.duplicated = 0;
    client.reordered = 0;
    client.seen = new Uint8Array(Math.ceil(expected / 8));
    client.last = new Int32Array(producers).fill(-1);
  };
  const advance = () => {
    const before = level;
    while (level + 1 < reached.length && open > 0 && reached[level + 1]! >= open) level += 1;
    if (level !== before) onProgress(run, Math.min(level * step, expected));
  };

  return {
    add() {
      const client: Client = {
        open: true,
        retired: false,
        unique: 0,
        duplicated: 0,
        reordered: 0,
        seen: new Uint8Array(0),
        last: new Int32Array(0),
      };
      reset(client);
      clients.push(client);
      open += 1;
      return client;
    },
    closed(client, code) {
      if (client.retired || !client.open) return;
      client.open = false;
      open -= 1;
      closes[code] = (closes[code] ?? 0) + 1;
      // Its thresholds no longer count: take them back, then the others may be complete.
      const top = client.unique === expected ? reached.length - 1 : Math.floor(client.unique / step);
      for (let k = 1; k <= top; k++) reached[k]! -= 1;
      advance();
    },
    arm(command) {
      ({ run, expected, producers, step } = command);
      reached = new Int32Array(Math.ceil(expected / step) + 1);
      level = 0;
      stray = 0;
      closes = {};
      lastReceiveMs = 0;
      latency = createSamples(expected * clients.length);
      for (const client of clients) reset(client);
    },
    clear() {
      for (const client of clients) client.retired = true;
      clients.length = 0;
      open = 0;
    },
    receive(client, frame, nowMs) {
      if (client.retired) return;
      // `{"r":` leads the payload; a schema channel re-serialises it in the same key order.
      const at = frame.indexOf('"seq":', 5);
      const tAt = frame.indexOf('"t":', at);
      if (at < 0 || tAt < 0 || numberAt(frame, 5) !== run) {
        stray += 1;
        return;
      }
      const seq = numberAt(frame, at + 6);
      if (!(seq >= 0 && seq < expected)) {
        stray += 1;
        return;
      }
      lastReceiveMs = nowMs;
      latency.add(nowMs - numberAt(frame, tAt + 4));
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
      if (client.open && (client.unique % step === 0 || client.unique === expected)) {
        const k = Math.ceil(client.unique / step);
        reached[k]! += 1;
        if (k === level + 1) advance();
      }
    },
    report() {
      return {
        unique: clients.map((c) => c.unique),
        duplicated: clients.map((c) => c.duplicated),
        reordered: clients.map((c) => c.reordered),
        stray,
        closes,
        lastReceiveMs,
        latency: encodeHistogram(latency.histogram()),
      };
    },
  };
}
