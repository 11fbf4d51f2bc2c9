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
import { authReport, bySetupRate, HOLDERS, type Setup } from './auth-report.ts';
import { runStorm, type StormResult } from './expiry.ts';
import { type Holders, startHolders } from './holders.ts';
import { cpuMeter } from './procstat.ts';
import type { Context, Outcome } from './scenario.ts';
import { num } from './stats.ts';
import { launch, type Target } from './target.ts';
import { runTrial, type TrialResult } from './trial.ts';

const SECRET_ENV = 'PGWS_BENCH_JWT_SECRET';
const SECRET = crypto.randomUUID() + crypto.randomUUID();
const key = new TextEncoder().encode(SECRET);
const GRANTS = { 'bench_*': 'r' };
const FANOUT_WINDOW_BYTES = 64 * 1024;

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
    // A 64 KiB credit window instead of the rig's 512 KiB: the generators report progress every quarter
    // window, and at 100 B that is 1.3 M frames, longer than the trial waits for progress (3 s) when
    // other work shares the machine; runs then ended early with frames still on their way ("lost").
    const fanRig = { ...rig, windowBytes: FANOUT_WINDOW_BYTES };
    // Round 0 warms the generators and both servers up and is not reported: on a fresh fleet (--only
    // auth) the first round ran slow enough that the trial's drain gave up on frames still arriving.
    for (let round = 0; round <= rounds; round++) {
      for (const variant of ['off', 'on'] as const) {
        say(
          `auth: fan-out, 1,000 clients, 100 B, auth ${variant}, ${round === 0 ? 'warm-up' : `run ${round}/${rounds}`}`,
        );
        const target = variant === 'on' ? withToken : off;
        const trial = { label: `auth ${variant}`, target, channel: `bench_auth_${variant}`, clients: 1000, size: 100 };
        const result = await runTrial(fanRig, {
          ...trial,
          send: { kind: 'burst', count: round === 0 ? 100 : fanoutCount },
        });
        if (round > 0) fanouts[variant].push(result);
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
  return authReport(setups, fanouts, storm, setupRounds, rounds);
}
