/**
 * The expiry storm of the auth scenario: many multiplexed sockets whose tokens carry the same `exp`, so
 * the server's per-socket timers all fire at (exp + 5 s) and close them with 4401 at once. Measured,
 * not asserted: how long after that instant the clients see their closes, and how long the server's
 * event loop is held meanwhile, read as the round-trip time of pgws.v1 `ping` frames that one more
 * client sends back to back (1 ms apart) from before the instant until the last close.
 */
import { openMux } from './mux-client.ts';
import type { Pool, SeenClose } from './pool.ts';
import { type Column, ms, num, type Section, section } from './report.ts';

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
  readonly pool: Pool;
  readonly urls: readonly string[];
  readonly sockets: number;
  /** Client processes to hold the sockets. */
  readonly generators: number;
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
  const { pool } = spec;
  const exp = Math.ceil(Date.now() / 1000 + spec.connectSeconds) + 1;
  const deadline = exp * 1000 + TOLERANCE_MS;
  const [tokens, [pingToken]] = await Promise.all([spec.mint(spec.sockets, exp), spec.mint(1, exp + 3600)]);
  const pinger = await openPinger(spec.urls[0] ?? '', pingToken ?? '');
  try {
    const connect = await pool.connect({
      kind: 'mux',
      urls: spec.urls,
      count: spec.sockets,
      tokens,
      generators: spec.generators,
      timeoutMs: 60_000,
    });
    const margin = deadline - Date.now();
    await Bun.sleep(Math.max(0, deadline - 1500 - Date.now()));
    pinger.start();
    let closes: SeenClose[] = [];
    await Bun.sleep(Math.max(0, deadline + 1000 - Date.now()));
    while (closes.length < connect.opened && Date.now() < deadline + WAIT_AFTER_MS) {
      closes = await pool.closes();
      if (closes.length < connect.opened) await Bun.sleep(250);
    }
    const offsets = closes.map((close) => close.at - deadline).sort((a, b) => a - b);
    const lastAt = deadline + (offsets.at(-1) ?? 0);
    await Bun.sleep(Math.max(0, lastAt + 300 - Date.now()));
    const samples = pinger.stop();
    const before = samples.filter((p) => p.sentAt < deadline - 100).map((p) => p.rtt);
    const storm = samples.filter((p) => p.sentAt >= deadline - 100 && p.sentAt <= lastAt).map((p) => p.rtt);
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
    await pool.close();
  }
}

/** A multiplexed client with a long-lived token that, once started, pings back to back, 1 ms apart. */
async function openPinger(url: string, token: string) {
  const socket = await openMux(url, 10_000, token);
  const samples: { sentAt: number; rtt: number }[] = [];
  let running = false;
  let sentAt = 0;
  let sentClock = 0;
  let outstanding = false;
  const ping = () => {
    if (!running) return;
    sentAt = Date.now();
    sentClock = performance.now();
    outstanding = true;
    socket.ws.send('{"type":"ping"}');
  };
  await socket.subscribe(
    [],
    (text) => {
      if (!text.startsWith('{"type":"pong"')) return;
      outstanding = false;
      samples.push({ sentAt, rtt: performance.now() - sentClock });
      setTimeout(ping, 1);
    },
    10_000,
  );
  return {
    start() {
      running = true;
      ping();
    },
    /** Stops sending; the samples of every ping answered (a ping still unanswered counts up to now). */
    stop() {
      running = false;
      if (outstanding) samples.push({ sentAt, rtt: performance.now() - sentClock });
      return samples;
    },
    close: () => socket.ws.close(),
  };
}

const COLUMNS: readonly Column<StormResult>[] = [
  ['sockets ready', (x) => `${num(x.connected)}/${num(x.sockets)}`],
  ['closed 4401', (x) => num(x.closed4401)],
  ['other closes', (x) => num(x.otherCloses)],
  ['first close ms', (x) => ms(x.firstClose)],
  ['p50 ms', (x) => ms(x.p50Close)],
  ['p99 ms', (x) => ms(x.p99Close)],
  ['last close ms', (x) => ms(x.lastClose)],
  ['ping p50 before ms', (x) => ms(x.pingBeforeP50)],
  ['ping max before ms', (x) => ms(x.pingBeforeMax)],
  ['ping max in storm ms', (x) => ms(x.pingStormMax)],
  ['pings in storm', (x) => num(x.pings)],
];

/** The storm as a report section. */
export function stormSection(x: StormResult): Section {
  return section(
    `Authorization: ${num(x.sockets)} tokens expiring in the same second`,
    COLUMNS,
    [x],
    [
      `Every token has the same \`exp\`; the server closes each socket at exp + 5 s (the clock tolerance), "the deadline". Close times are when each client's close event fired, minus the deadline (both Date.now() on this machine), so they include the generators' own event loops working through their share of closes. The ping columns are one more client's pgws.v1 \`ping\` → \`pong\` round trips, sent 1 ms apart from 1.5 s before the deadline: "in storm" is the worst round trip of a ping sent from 100 ms before the deadline to the last close, i.e. how long the server's event loop was held. Measured, not asserted.`,
      ...(x.margin < 0
        ? [
            `- connecting the sockets overran the deadline by ${ms(-x.margin)} ms: some closes overlapped the connect phase`,
          ]
        : []),
      ...(x.connectFailures > 0
        ? [`- ${num(x.connectFailures)} sockets failed to connect (${x.firstError ?? 'no error text'})`]
        : []),
    ],
  );
}
