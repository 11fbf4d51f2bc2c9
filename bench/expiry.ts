/**
 * The expiry storm: many multiplexed sockets whose tokens carry the same `exp`, so the server's
 * per-socket timers all fire at (exp + 5 s) and close them with 4401 at once. Measured, not asserted:
 * how long after that instant the clients see their closes, and how long the server's event loop is
 * held meanwhile, read as the round-trip time of pgws.v1 `ping` frames that one more client sends
 * back to back (1 ms apart) from before the instant until the last close.
 */
import type { Holders, SeenClose } from './holders.ts';

/** What one storm showed; times in ms, offsets relative to the close deadline (exp + 5 s). */
export interface StormResult {
  readonly sockets: number;
  readonly connected: number;
  readonly connectFailures: number;
  readonly firstError: string | undefined;
  /** Ms of margin between the last socket's `ready` and the deadline (negative: connecting overlapped it). */
  readonly margin: number;
  readonly closed4401: number;
  readonly otherCloses: number;
  readonly firstClose: number | undefined;
  readonly p50Close: number | undefined;
  readonly p99Close: number | undefined;
  readonly lastClose: number | undefined;
  readonly pingBeforeP50: number | undefined;
  readonly pingBeforeMax: number | undefined;
  readonly pingStormMax: number | undefined;
  readonly pings: number;
}

/** How to run one. `mint(count, exp)` makes that many tokens expiring at `exp` (Unix seconds). */
export interface StormSpec {
  readonly holders: Holders;
  readonly urls: readonly string[];
  readonly sockets: number;
  /** Seconds from now by which every socket should be connected (from the measured connect rate). */
  readonly connectSeconds: number;
  readonly mint: (count: number, exp: number) => Promise<string[]>;
}

const TOLERANCE_MS = 5000;
const WAIT_AFTER_MS = 30_000;

const quantile = (sorted: readonly number[], q: number) =>
  sorted.length === 0 ? undefined : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

/** Runs one storm; the sockets are closed again whatever happens. */
export async function runStorm(spec: StormSpec): Promise<StormResult> {
  const exp = Math.ceil(Date.now() / 1000 + spec.connectSeconds) + 1;
  const deadline = exp * 1000 + TOLERANCE_MS;
  const [tokens, [pingToken]] = await Promise.all([spec.mint(spec.sockets, exp), spec.mint(1, exp + 3600)]);
  const pinger = await openPinger(spec.urls[0] ?? '', pingToken ?? '');
  try {
    const connect = await spec.holders.open({ urls: spec.urls, count: spec.sockets, tokens, timeoutMs: 60_000 });
    const margin = deadline - Date.now();
    await Bun.sleep(Math.max(0, deadline - 1500 - Date.now()));
    pinger.start();
    let closes: SeenClose[] = [];
    await Bun.sleep(Math.max(0, deadline + 1000 - Date.now()));
    while (closes.length < connect.opened && Date.now() < deadline + WAIT_AFTER_MS) {
      closes = await spec.holders.closes();
      if (closes.length < connect.opened) await Bun.sleep(250);
    }
    const offsets = closes.map((close) => close.at - deadline).sort((a, b) => a - b);
    const lastAt = deadline + (offsets.at(-1) ?? 0);
    await Bun.sleep(Math.max(0, lastAt + 300 - Date.now()));
    const samples = pinger.stop();
    const before = samples.filter((s) => s.sentAt < deadline - 100).map((s) => s.rtt);
    const storm = samples.filter((s) => s.sentAt >= deadline - 100 && s.sentAt <= lastAt).map((s) => s.rtt);
    const sortedBefore = before.sort((a, b) => a - b);
    return {
      sockets: spec.sockets,
      connected: connect.opened,
      connectFailures: connect.failed,
      firstError: connect.firstError,
      margin,
      closed4401: closes.filter((close) => close.code === 4401).length,
      otherCloses: closes.filter((close) => close.code !== 4401).length,
      firstClose: offsets[0],
      p50Close: quantile(offsets, 0.5),
      p99Close: quantile(offsets, 0.99),
      lastClose: offsets.at(-1),
      pingBeforeP50: quantile(sortedBefore, 0.5),
      pingBeforeMax: sortedBefore.at(-1),
      pingStormMax: storm.length === 0 ? undefined : Math.max(...storm),
      pings: storm.length,
    };
  } finally {
    pinger.close();
    await spec.holders.close();
  }
}

interface Pinger {
  start(): void;
  /** Stops sending; the samples of every ping answered (a ping still unanswered counts up to now). */
  stop(): Array<{ sentAt: number; rtt: number }>;
  close(): void;
}

/** A multiplexed client with a long-lived token that, once started, pings back to back, 1 ms apart. */
async function openPinger(url: string, token: string): Promise<Pinger> {
  const ws = new WebSocket(url, ['pgws.v1', `bearer.${token}`]);
  const ready = Promise.withResolvers<void>();
  const samples: Array<{ sentAt: number; rtt: number }> = [];
  let running = false;
  let sentAt = 0;
  let sentClock = 0;
  let outstanding = false;
  const ping = () => {
    if (!running) return;
    sentAt = Date.now();
    sentClock = performance.now();
    outstanding = true;
    ws.send('{"type":"ping"}');
  };
  ws.onmessage = (event) => {
    const type = JSON.parse(String(event.data)).type;
    if (type === 'ready') return ready.resolve();
    if (type !== 'pong') return;
    outstanding = false;
    samples.push({ sentAt, rtt: performance.now() - sentClock });
    setTimeout(ping, 1);
  };
  ws.onclose = (event) => ready.reject(new Error(`the pinger was closed (${event.code})`));
  const timer = setTimeout(() => ready.reject(new Error('the pinger got no ready within 10 s')), 10_000);
  await ready.promise.finally(() => clearTimeout(timer));
  return {
    start() {
      running = true;
      ping();
    },
    stop() {
      running = false;
      if (outstanding) samples.push({ sentAt, rtt: performance.now() - sentClock });
      return samples;
    },
    close: () => ws.close(),
  };
}
