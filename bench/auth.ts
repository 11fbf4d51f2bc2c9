/**
 * Authorization's cost: two servers of ours, identical but for `[auth]`, taking turns: connection setup
 * of multiplexed sockets with a token each, fan-out to plain clients with one in `?token=`, and the
 * expiry storm (bench/expiry.ts).
 */
import { SignJWT } from 'jose';
import { runStorm, type Storm, stormSection } from './expiry.ts';
import { cpuMeter } from './procstat.ts';
import { type Column, check, count, ms, num, ratio, section, times } from './report.ts';
import * as s from './scenario.ts';
import type { Target } from './servers.ts';
import { runTrial } from './trial.ts';

const SECRET_ENV = 'PGWS_BENCH_JWT_SECRET';
const SECRET = crypto.randomUUID() + crypto.randomUUID();
const key = new TextEncoder().encode(SECRET);
/** Client processes that open the setup sockets, 64 at a time each. */
const HOLDERS = 2;
// 64 KiB instead of 512: a credit step at 100 B would be 1.3 M frames, longer than the trial waits for
// progress on a busy machine; runs then ended with frames still on their way ("lost").
const FANOUT_WINDOW_BYTES = 64 * 1024;

/** Tokens for `bench-0`…, HS256 with the run's secret, granting the bench channels, expiring at `exp`. */
const mint = (n: number, exp: number) =>
  Promise.all(
    Array.from({ length: n }, (_, i) =>
      new SignJWT({ channels: { 'bench_*': 'r' } })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject(`bench-${i}`)
        .setExpirationTime(exp)
        .sign(key),
    ),
  );
const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;

/** Waits (bounded) until the server has let go of every socket, so the next run starts from zero. */
async function drained(target: Target): Promise<void> {
  const deadline = performance.now() + 30_000;
  while (performance.now() < deadline && (await target.metric('pgws_connections')) !== 0) await Bun.sleep(100);
}

/** One connection-setup run; server CPU per socket is steadier than the rate on a shared machine. */
async function setup(context: s.Context, target: Target, sockets: number, tokens: string[] | undefined) {
  const { pool, addresses } = context.rig;
  const meter = cpuMeter(() => target.processes());
  const urls = target.rootUrls(addresses);
  const spec = { kind: 'mux', urls, count: sockets, generators: HOLDERS } as const;
  const result = await pool.connect({ ...spec, ...(tokens === undefined ? {} : { tokens }) });
  const reading = meter();
  await pool.close();
  await drained(target);
  const cpuPerSocketUs = (reading.seconds * 1e6) / Math.max(1, result.opened);
  return { ...result, sockets, rate: result.opened / (result.ms / 1000), cpu: reading.percent, cpuPerSocketUs };
}

type Setup = Awaited<ReturnType<typeof setup>>;

/** One server's setup runs (the median one by rate, and the median server CPU per socket) and fan-out runs. */
type Side = s.Runs & { label: string; setups: Setup[]; setup: Setup | undefined; cpuPerSocketUs: number | undefined };

/** Runs the auth scenario. */
export async function auth(context: s.Context): Promise<s.Outcome> {
  const { rig, say, quick } = context;
  const rounds = quick ? 1 : 3;
  // Setting up sockets takes a second or two: more rounds for a steadier median on a shared machine.
  const setupRounds = quick ? 1 : 5;
  const sockets = quick ? 1000 : 5000;
  const stormSockets = quick ? 2000 : 10_000;
  const env = { [SECRET_ENV]: SECRET };
  await using off = await s.startOursFor(context, { label: 'auth off' });
  const authToml = `[auth]\nsecret_env = "${SECRET_ENV}"\nquery_token = true`;
  await using on = await s.startOursFor(context, { label: 'auth on', toml: authToml, env });
  const [fanToken] = await mint(1, inAnHour());
  const withToken: Target = {
    ...on,
    urls: (channel, n) => on.urls(channel, n).map((url) => `${url}?token=${fanToken}`),
  };
  const servers = [off, on];
  const setups = await s.inTurns(servers, setupRounds, async (target, round) => {
    say(`auth: connection setup, ${num(sockets)} sockets, ${target.label}, run ${round}/${setupRounds}`);
    return setup(context, target, sockets, target === on ? await mint(sockets, inAnHour()) : undefined);
  });
  // Round 1 warms everything up and is not reported: on a fresh pool its drain gave up too early.
  const fanRig = { ...rig, windowBytes: FANOUT_WINDOW_BYTES };
  const fanouts = await s.inTurns(servers, rounds + 1, (target, round) => {
    const which = round === 1 ? 'warm-up' : `run ${round - 1}/${rounds}`;
    say(`auth: fan-out, 1,000 clients, 100 B, ${target.label}, ${which}`);
    const send = { kind: 'burst', count: round === 1 ? 100 : quick ? 200 : 3000 } as const;
    const spec = { label: target.label, clients: 1000, size: 100, send };
    if (target === on) return runTrial(fanRig, { ...spec, target: withToken, channel: 'bench_auth_on' });
    return runTrial(fanRig, { ...spec, target: off, channel: 'bench_auth_off' });
  });
  const sides = servers.flatMap((target, i): Side[] => {
    const runs = s.runsOf(fanouts[i]?.slice(1) ?? []);
    const mine = setups[i] ?? [];
    const setup = s.middle(mine, (x) => x.rate);
    const cpuPerSocketUs = s.middle(mine, (x) => x.cpuPerSocketUs)?.cpuPerSocketUs;
    return runs === undefined ? [] : [{ ...runs, label: target.label, setups: mine, setup, cpuPerSocketUs }];
  });
  say(`auth: expiry storm, ${num(stormSockets)} sockets with tokens expiring in the same second`);
  const rateOn = sides[1]?.setup?.rate ?? 400;
  const storm = await runStorm(rig.pool, {
    urls: on.rootUrls(rig.addresses),
    sockets: stormSockets,
    generators: HOLDERS,
    connectSeconds: (2 * stormSockets) / rateOn + 3,
    mint,
  });
  return report(sides, storm, setupRounds, rounds);
}

function report(sides: readonly Side[], storm: Storm, setupRounds: number, rounds: number): s.Outcome {
  const [off, on] = sides;
  const setupColumns: Column<Side>[] = [
    ['server', (x) => x.label],
    ['sockets', ({ setup }) => num(setup?.sockets)],
    ['ready', ({ setup }) => `${num(setup?.opened)}/${num(setup?.sockets)}`],
    ['setup ms', ({ setup }) => ms(setup?.ms)],
    ['sockets/s', ({ setup }) => num(setup?.rate)],
    ['range of runs', ({ setups }) => s.rangeOf(setups.map((x) => x.rate))],
    ['CPU srv %', ({ setup }) => num(setup?.cpu)],
    ['× auth off', ({ setup }) => times(ratio(setup?.rate, off?.setup?.rate))],
    ['srv CPU µs/socket', (x) => num(x.cpuPerSocketUs)],
    ['CPU × auth off', (x) => times(ratio(x.cpuPerSocketUs, off?.cpuPerSocketUs))],
  ];
  const fanColumns: Column<Side>[] = [
    ['server', (x) => x.label],
    ...s.INTEGRITY,
    ...s.RATE,
    ['× auth off', ({ r }) => times(ratio(r.framesPerSecond, off?.r.framesPerSecond))],
    ...s.TAIL,
  ];
  const failedSetups = sides.flatMap((x) =>
    x.setups.filter((setup) => setup.failed > 0).map((setup) => ({ ...setup, label: x.label })),
  );
  return {
    sections: [
      section(
        'Authorization: connection setup, auth off vs on (multiplexed, token as subprotocol)',
        setupColumns,
        sides,
        [
          `Median of ${count(setupRounds, 'run')} by sockets/s, servers taking turns; "srv CPU µs/socket" is the server's CPU time over the run per socket set up (median of the runs), which the clients sharing the two cores disturb less than the rate. A socket counts once its \`ready\` frame arrives (upgrade, token verified with jose, session opened); ${HOLDERS} generator processes open them 64 at a time each over 127.0.0.1..8. With auth on each socket offers its own HS256 token (\`bearer.T\`); with auth off, only \`pgws.v1\`.`,
          ...failedSetups.map(
            (x) => `- ${x.label}: ${num(x.failed)} sockets failed (${x.firstError ?? 'no error text'})`,
          ),
        ],
      ),
      section('Authorization: fan-out, auth off vs on (1,000 plain clients, 100 B)', fanColumns, sides, [
        `${s.medianOf(rounds)}, servers taking turns, after one unreported warm-up round each; measured as in the fan-out table but with a 64 KiB credit window (a progress report every 164 notifications rather than every 1,310, so a slow moment on this shared machine does not end a run early). Auth on: every client's URL carries the token in \`?token=\` (query_token = true); it is checked once, at the upgrade.`,
        ...sides.flatMap((x) => s.runNotes(x.label, x.runs)),
      ]),
      stormSection(storm),
    ],
    targets: [
      check(
        'fan-out with auth on ≥ 0.98 × auth off, 1,000 clients, 100 B, nothing lost',
        `${num(on?.r.framesPerSecond)} vs ${num(off?.r.framesPerSecond)} frames/s`,
        ratio(on?.r.framesPerSecond, off?.r.framesPerSecond),
        { min: 0.98 },
        sides.every((x) => x.runs.every(s.clean)),
      ),
      check(
        `connection setup with auth on ≥ 0.8 × auth off, ${num(on?.setup?.sockets)} multiplexed sockets`,
        `${num(on?.setup?.rate)} vs ${num(off?.setup?.rate)} sockets/s (server CPU ${num(on?.cpuPerSocketUs)} vs ${num(off?.cpuPerSocketUs)} µs per socket)`,
        ratio(on?.setup?.rate, off?.setup?.rate),
        { min: 0.8 },
        failedSetups.length === 0,
      ),
    ],
  };
}
