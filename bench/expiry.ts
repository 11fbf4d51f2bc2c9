/**
 * The auth scenario's expiry storm: sockets whose tokens share one `exp`, so the server closes them all
 * with 4401 at exp + 5 s, "the deadline". Measured, not asserted: when the clients see their closes, and
 * how long the server's event loop is held meanwhile, read as the round trips of `ping` frames one more
 * client sends 1 ms apart from before the deadline until the last close.
 */
import { openMux } from './mux-client.ts';
import type { Pool, SeenClose } from './pool.ts';
import { type Column, ms, num, type Section, section } from './report.ts';

const TOLERANCE_MS = 5000;
const WAIT_AFTER_MS = 30_000;

/**
 * Runs one storm over `sockets` sockets on `generators` client processes, connected within about
 * `connectSeconds`; `mint(count, exp)` makes tokens expiring at `exp` (Unix seconds). Returns the close
 * times after the deadline and the ping round trips before it and in the storm (ms, sorted), and the
 * margin between the last socket's `ready` and the deadline (negative: connecting overlapped it).
 */
export async function runStorm(
  pool: Pool,
  spec: {
    readonly urls: readonly string[];
    readonly sockets: number;
    readonly generators: number;
    readonly connectSeconds: number;
    readonly mint: (count: number, exp: number) => Promise<string[]>;
  },
) {
  const exp = Math.ceil(Date.now() / 1000 + spec.connectSeconds) + 1;
  const deadline = exp * 1000 + TOLERANCE_MS;
  const [tokens, [pingToken]] = await Promise.all([spec.mint(spec.sockets, exp), spec.mint(1, exp + 3600)]);
  const pinger = await openPinger(spec.urls[0] ?? '', pingToken ?? '');
  try {
    const { urls, sockets, generators } = spec;
    const connect = await pool.connect({ kind: 'mux', urls, count: sockets, tokens, generators, timeoutMs: 60_000 });
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
    const rtts = (keep: (sentAt: number) => boolean) =>
      samples
        .filter((p) => keep(p.sentAt))
        .map((p) => p.rtt)
        .sort((a, b) => a - b);
    const pingsBefore = rtts((at) => at < deadline - 100);
    const pingsInStorm = rtts((at) => at >= deadline - 100 && at <= lastAt);
    return { sockets, connect, margin, closes, offsets, pingsBefore, pingsInStorm };
  } finally {
    pinger.close();
    await pool.close();
  }
}

/** What one storm showed. */
export type Storm = Awaited<ReturnType<typeof runStorm>>;

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
  const pong = (text: string) => {
    if (!text.startsWith('{"type":"pong"')) return;
    outstanding = false;
    samples.push({ sentAt, rtt: performance.now() - sentClock });
    setTimeout(ping, 1);
  };
  await socket.subscribe([], pong, 10_000);
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

const quantile = (sorted: readonly number[], q: number) =>
  sorted.length === 0 ? undefined : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

const COLUMNS: readonly Column<Storm>[] = [
  ['sockets ready', (x) => `${num(x.connect.opened)}/${num(x.sockets)}`],
  ['closed 4401', (x) => num(x.closes.filter((close) => close.code === 4401).length)],
  ['other closes', (x) => num(x.closes.filter((close) => close.code !== 4401).length)],
  ['first close ms', (x) => ms(x.offsets[0])],
  ['p50 ms', (x) => ms(quantile(x.offsets, 0.5))],
  ['p99 ms', (x) => ms(quantile(x.offsets, 0.99))],
  ['last close ms', (x) => ms(x.offsets.at(-1))],
  ['ping p50 before ms', (x) => ms(quantile(x.pingsBefore, 0.5))],
  ['ping max before ms', (x) => ms(x.pingsBefore.at(-1))],
  ['ping max in storm ms', (x) => ms(x.pingsInStorm.at(-1))],
  ['pings in storm', (x) => num(x.pingsInStorm.length)],
];

/** The storm as a report section. */
export function stormSection(x: Storm): Section {
  const { connect } = x;
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
      ...(connect.failed > 0
        ? [`- ${num(connect.failed)} sockets failed to connect (${connect.firstError ?? 'no error text'})`]
        : []),
    ],
  );
}
