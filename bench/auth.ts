/**
 * Authorization's cost (`--only auth`): two servers of ours, identical but for `[auth]` (HS256,
 * `query_token = true`), taking turns. Connection setup: 5,000 multiplexed sockets, each offering its
 * own token as the subprotocol `bearer.T` (none with auth off), counted when their `ready` arrives.
 * Fan-out: 1,000 plain clients, 100 B payloads, through the shared generators and trial (their token
 * rides in `?token=`, the one place a generator's URL can carry it; the check is once per upgrade
 * either way). Then the expiry storm of bench/expiry.ts: 10,000 sockets whose tokens expire together.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { freePort } from '../src/db/embedded.ts';
import { runStorm, type StormResult } from './expiry.ts';
import { type Holders, startHolders } from './holders.ts';
import { cpuMeter } from './procstat.ts';
import {
  anomalies,
  type Context,
  clean,
  INTEGRITY_HEADERS,
  integrityCells,
  median,
  type Outcome,
  spread,
  TAIL_HEADERS,
  tailCells,
} from './scenario.ts';
import { check, ms, num, ratio, type Section, times } from './stats.ts';
import { launch, type Target } from './target.ts';
import { runTrial, type TrialResult } from './trial.ts';

const SECRET_ENV = 'PGWS_BENCH_JWT_SECRET';
const SECRET = crypto.randomUUID() + crypto.randomUUID();
const key = new TextEncoder().encode(SECRET);
const GRANTS = { 'bench_*': 'r' };
const HOLDERS = 2;

/** Tokens for `bench-0`…, HS256 with the run's secret, granting the bench channels, expiring at `exp`. */
const mint = (count: number, exp: number) =>
  Promise.all(
    Array.from({ length: count }, (_, i) =>
      new SignJWT({ channels: GRANTS })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject(`bench-${i}`)
        .setExpirationTime(exp)
        .sign(key),
    ),
  );

async function startServer(context: Context, label: string, auth: boolean): Promise<Target> {
  const dir = mkdtempSync(join(tmpdir(), 'pgws-bench-auth-'));
  const port = await freePort('0.0.0.0');
  const file = join(dir, 'channels.toml');
  const section = auth ? ['[auth]', `secret_env = "${SECRET_ENV}"`, 'query_token = true'] : [];
  writeFileSync(file, ['[server]', 'host = "0.0.0.0"', `port = ${port}`, ...section, ''].join('\n'));
  const profile =
    context.profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-md', `--cpu-prof-dir=${context.profileDir}`];
  return launch({
    label,
    argv: [process.execPath, ...profile, 'src/main.ts', '--config', file],
    env: { DATABASE_URL: context.rig.db.url, LOG_LEVEL: 'warn', HOST: '', [SECRET_ENV]: SECRET },
    dir,
    port,
    metrics: true,
  });
}

const muxUrls = (target: Target, addresses: number) =>
  Array.from({ length: addresses }, (_, i) => `ws://127.0.0.${i + 1}:${target.port}/`);

/** Waits (bounded) until the server has let go of every socket, so the next trial starts from zero. */
async function drained(target: Target): Promise<void> {
  const deadline = performance.now() + 30_000;
  while (performance.now() < deadline) {
    const text = await fetch(`http://127.0.0.1:${target.port}/metrics`, { headers: { connection: 'close' } })
      .then((r) => r.text())
      .catch(() => '');
    if (/^pgws_connections 0$/m.test(text)) return;
    await Bun.sleep(100);
  }
}

interface Setup {
  readonly label: string;
  readonly sockets: number;
  readonly opened: number;
  readonly failed: number;
  readonly firstError: string | undefined;
  readonly ms: number;
  readonly rate: number;
  readonly cpu: number;
  /** Server CPU time per socket set up, in µs: steadier than the rate on a machine shared with the clients. */
  readonly cpuPerSocketUs: number;
}

async function setupTrial(
  holders: Holders,
  target: Target,
  sockets: number,
  tokens: string[] | undefined,
  addresses: number,
): Promise<Setup> {
  const meter = cpuMeter(() => target.processes());
  const result = await holders.open({
    urls: muxUrls(target, addresses),
    count: sockets,
    ...(tokens === undefined ? {} : { tokens }),
  });
  const reading = meter();
  await holders.close();
  await drained(target);
  const rate = result.opened / (result.ms / 1000);
  const cpuPerSocketUs = (reading.seconds * 1e6) / Math.max(1, result.opened);
  return { label: target.label, sockets, ...result, rate, cpu: reading.percent, cpuPerSocketUs };
}

/** Runs the auth scenario. */
export async function auth(context: Context): Promise<Outcome> {
  const { rig, say } = context;
  const rounds = context.quick ? 1 : 3;
  // Setting up sockets takes a second or two: more rounds for a steadier median on a shared machine.
  const setupRounds = context.quick ? 1 : 5;
  const sockets = context.quick ? 1000 : 5000;
  const stormSockets = context.quick ? 2000 : 10_000;
  const fanoutCount = context.quick ? 200 : 3000;
  const started: Target[] = [];
  const setups: Record<'off' | 'on', Setup[]> = { off: [], on: [] };
  const fanouts: Record<'off' | 'on', TrialResult[]> = { off: [], on: [] };
  let storm: StormResult | undefined;
  let holders: Holders | undefined;
  try {
    const off = await startServer(context, 'auth off', false);
    started.push(off);
    const on = await startServer(context, 'auth on', true);
    started.push(on);
    holders = await startHolders(HOLDERS);
    const [fanToken] = await mint(1, Math.floor(Date.now() / 1000) + 3600);
    const withToken: Target = {
      ...on,
      urls: (channel, n) => on.urls(channel, n).map((url) => `${url}?token=${fanToken}`),
    };
    for (let round = 1; round <= setupRounds; round++) {
      for (const variant of ['off', 'on'] as const) {
        say(`auth: connection setup, ${num(sockets)} sockets, auth ${variant}, run ${round}/${setupRounds}`);
        const tokens = variant === 'on' ? await mint(sockets, Math.floor(Date.now() / 1000) + 3600) : undefined;
        setups[variant].push(await setupTrial(holders, variant === 'on' ? on : off, sockets, tokens, rig.addresses));
      }
    }
    for (let round = 1; round <= rounds; round++) {
      for (const variant of ['off', 'on'] as const) {
        say(`auth: fan-out, 1,000 clients, 100 B, auth ${variant}, run ${round}/${rounds}`);
        const target = variant === 'on' ? withToken : off;
        const trial = { label: `auth ${variant}`, target, channel: `bench_auth_${variant}`, clients: 1000, size: 100 };
        fanouts[variant].push(await runTrial(rig, { ...trial, send: { kind: 'burst', count: fanoutCount } }));
      }
    }
    const rateOn = bySetupRate(setups.on)?.rate ?? 400;
    say(`auth: expiry storm, ${num(stormSockets)} sockets with tokens expiring in the same second`);
    storm = await runStorm({
      holders,
      urls: muxUrls(on, rig.addresses),
      sockets: stormSockets,
      connectSeconds: (2 * stormSockets) / rateOn + 3,
      mint,
    });
  } finally {
    await holders?.stop();
    await Promise.all(started.map((t) => t.stop()));
  }
  return report(setups, fanouts, storm, setupRounds, rounds);
}

const bySetupRate = (results: readonly Setup[]) =>
  [...results].sort((a, b) => a.rate - b.rate)[Math.floor((results.length - 1) / 2)];

function report(
  setups: Record<'off' | 'on', Setup[]>,
  fanouts: Record<'off' | 'on', TrialResult[]>,
  storm: StormResult | undefined,
  setupRounds: number,
  rounds: number,
): Outcome {
  const medianOf = (values: readonly number[]) =>
    [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)];
  const cpuOff = medianOf(setups.off.map((s) => s.cpuPerSocketUs));
  const cpuOn = medianOf(setups.on.map((s) => s.cpuPerSocketUs));
  const [setupOff, setupOn] = [bySetupRate(setups.off), bySetupRate(setups.on)];
  const [fanOff, fanOn] = [median(fanouts.off), median(fanouts.on)];
  const setupRows = (['off', 'on'] as const).map((variant) => {
    const r = bySetupRate(setups[variant]);
    const rates = setups[variant].map((s) => s.rate);
    return [
      `auth ${variant}`,
      num(r?.sockets),
      `${num(r?.opened)}/${num(r?.sockets)}`,
      ms(r?.ms),
      num(r?.rate),
      rates.length < 2 ? '' : `${num(Math.min(...rates))}–${num(Math.max(...rates))}`,
      num(r?.cpu),
      times(ratio(r?.rate, setupOff?.rate)),
      num(medianOf(setups[variant].map((s) => s.cpuPerSocketUs))),
      times(ratio(medianOf(setups[variant].map((s) => s.cpuPerSocketUs)), cpuOff)),
    ];
  });
  const fanRows = (['off', 'on'] as const).flatMap((variant) => {
    const r = median(fanouts[variant]);
    if (r === undefined) return [];
    return [
      [
        r.label,
        ...integrityCells(r),
        num(r.framesPerSecond),
        spread(fanouts[variant]),
        times(ratio(r.framesPerSecond, fanOff?.framesPerSecond)),
        ...tailCells(r),
      ],
    ];
  });
  const failedSetups = [...setups.off, ...setups.on].filter((s) => s.failed > 0);
  const sections: Section[] = [
    {
      title: 'Authorization: connection setup, auth off vs on (multiplexed, token as subprotocol)',
      headers: [
        'server',
        'sockets',
        'ready',
        'setup ms',
        'sockets/s',
        'range of runs',
        'CPU srv %',
        '× auth off',
        'srv CPU µs/socket',
        'CPU × auth off',
      ],
      rows: setupRows,
      notes: [
        `Median of ${setupRounds} run${setupRounds === 1 ? '' : 's'} by sockets/s, servers taking turns; "srv CPU µs/socket" is the server's CPU time over the run per socket set up (median of the runs), which the clients sharing the two cores disturb less than the rate. A socket counts once its \`ready\` frame arrives (upgrade, token verified with jose, session opened); ${HOLDERS} holder processes open them 64 at a time each over 127.0.0.1..8. With auth on each socket offers its own HS256 token (\`bearer.T\`); with auth off, only \`pgws.v1\`.`,
        ...failedSetups.map(
          (s) => `- ${s.label}: ${num(s.failed)} sockets failed (${s.firstError ?? 'no error text'})`,
        ),
      ],
    },
    {
      title: 'Authorization: fan-out, auth off vs on (1,000 plain clients, 100 B)',
      headers: ['server', ...INTEGRITY_HEADERS, 'frames/s', 'range of runs', '× auth off', ...TAIL_HEADERS],
      rows: fanRows,
      notes: [
        `Median of ${rounds} run${rounds === 1 ? '' : 's'} by frames/s, servers taking turns; as in the fan-out table. Auth on: every client's URL carries the token in \`?token=\` (query_token = true); it is checked once, at the upgrade.`,
        ...(['off', 'on'] as const).flatMap((v) =>
          fanouts[v].flatMap((r, i) => anomalies(r, `auth ${v}, run ${i + 1}`)),
        ),
      ],
    },
  ];
  if (storm !== undefined) sections.push(stormSection(storm));
  const targets = [
    check(
      'fan-out with auth on ≥ 0.98 × auth off, 1,000 clients, 100 B, nothing lost',
      `${num(fanOn?.framesPerSecond)} vs ${num(fanOff?.framesPerSecond)} frames/s`,
      ratio(fanOn?.framesPerSecond, fanOff?.framesPerSecond),
      { min: 0.98 },
      [...fanouts.on, ...fanouts.off].every(clean),
    ),
    check(
      `connection setup with auth on ≥ 0.8 × auth off, ${num(setupOn?.sockets)} multiplexed sockets`,
      `${num(setupOn?.rate)} vs ${num(setupOff?.rate)} sockets/s (server CPU ${num(cpuOn)} vs ${num(cpuOff)} µs per socket)`,
      ratio(setupOn?.rate, setupOff?.rate),
      { min: 0.8 },
      failedSetups.length === 0,
    ),
  ];
  return { sections, targets };
}

function stormSection(s: StormResult): Section {
  return {
    title: `Authorization: ${num(s.sockets)} tokens expiring in the same second`,
    headers: [
      'sockets ready',
      'closed 4401',
      'other closes',
      'first close ms',
      'p50 ms',
      'p99 ms',
      'last close ms',
      'ping p50 before ms',
      'ping max before ms',
      'ping max in storm ms',
      'pings in storm',
    ],
    rows: [
      [
        `${num(s.connected)}/${num(s.sockets)}`,
        num(s.closed4401),
        num(s.otherCloses),
        ms(s.firstClose),
        ms(s.p50Close),
        ms(s.p99Close),
        ms(s.lastClose),
        ms(s.pingBeforeP50),
        ms(s.pingBeforeMax),
        ms(s.pingStormMax),
        num(s.pings),
      ],
    ],
    notes: [
      `Every token has the same \`exp\`; the server closes each socket at exp + 5 s (the clock tolerance), "the deadline". Close times are when each client's close event fired, minus the deadline (both Date.now() on this machine), so they include the holders' own event loops working through their share of closes. The ping columns are one more client's pgws.v1 \`ping\` → \`pong\` round trips, sent 1 ms apart from 1.5 s before the deadline: "in storm" is the worst round trip of a ping sent from 100 ms before the deadline to the last close, i.e. how long the server's event loop was held. Measured, not asserted.`,
      ...(s.margin < 0
        ? [
            `- connecting the sockets overran the deadline by ${ms(-s.margin)} ms: some closes overlapped the connect phase`,
          ]
        : []),
      ...(s.connectFailures > 0
        ? [`- ${num(s.connectFailures)} sockets failed to connect (${s.firstError ?? 'no error text'})`]
        : []),
    ],
  };
}
