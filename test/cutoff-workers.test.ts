/**
 * Cutting a subject off with `[server] workers = 2` (docs/PROTOCOL.md, "Cutting a subject off, and per-subject
 * limits"): real server processes sharing one port, so the kernel spreads connections over both workers.
 * The primary reads the control channel and hands every cut-off to its worker; it also counts the slots of
 * `max_connections_per_subject` for both. And a restart: a revocation outlives the processes.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { upgradeStatus } from './client.ts';
import { databaseUrl, metricIn, within } from './harness.ts';
import { connectMux, type MuxClient, openMux } from './mux.ts';
import { operator } from './pgws.ts';
import { everyWorkerReady, freshGet, spawnServer } from './process.ts';
import { authToml, nowSeconds, SECRET, SECRET_ENV, subjectToken as token } from './tokens.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(90_000);

const WORKERS = 2;
// Every socket on one of two workers by chance: 1 in 2^19.
const SOCKETS = 20;
const ops = operator(`cutw_${process.pid}_`);

/** A server of two workers with `[auth]` (and `extra` lines in it), every worker ready to take tokens. */
async function start(extra = '') {
  const server = await spawnServer({
    toml: `[server]\nworkers = ${WORKERS}\n${authToml(extra)}`,
    env: { DATABASE_URL: databaseUrl(), [SECRET_ENV]: SECRET },
  });
  await everyWorkerReady(server.url, WORKERS);
  return server;
}

/** Open connections per process (worker 0 is the primary), from `/metrics?by=worker`. */
async function perWorker(base: URL) {
  const text = await freshGet(base, '/metrics?by=worker');
  return Array.from({ length: WORKERS }, (_, w) => metricIn(text, 'pgws_connections', { worker: String(w) }));
}

/** `count` multiplexed sockets with `bearer`, each on a fresh connection the kernel gives to either process. */
async function sockets(base: URL, bearer: string, count = SOCKETS): Promise<MuxClient[]> {
  const clients: MuxClient[] = [];
  for (let i = 0; i < count; i++) clients.push(await connectMux(base, { bearer, ms: 15_000 }));
  return clients;
}

describe('workers = 2', () => {
  test('max_connections_per_subject counts both workers together, and pgws.disconnect and pgws.revoke reach the sockets on both', async () => {
    await using server = await start(`max_connections_per_subject = ${SOCKETS}`);
    const alice = ops.subject('alice');
    const first = await sockets(server.url, await token(alice, nowSeconds() - 60));
    expect((await perWorker(server.url)).every((count) => count > 0)).toBe(true);
    // One more, on whichever worker: the instance's count is full.
    const over = await openMux(server.url, { bearer: await token(alice), ms: 15_000 });
    expect(await within(over.closed, 10_000, 'the 4429')).toMatchObject({ code: 4429 });

    await ops.sql`SELECT pgws.disconnect(${alice}, 'on every worker')`;
    for (const client of first) {
      expect(await within(client.closed, 10_000, 'a close by pgws.disconnect')).toEqual({
        code: 4403,
        reason: 'on every worker',
      });
    }
    // Their slots are free again: as many new sockets, spread over both workers again.
    const old = await token(alice, nowSeconds() - 60);
    const second = await sockets(server.url, old);
    expect((await perWorker(server.url)).every((count) => count > 0)).toBe(true);
    await ops.sql`SELECT pgws.revoke(${alice})`;
    for (const client of second) {
      expect(await within(client.closed, 10_000, 'a close by pgws.revoke')).toEqual({
        code: 4403,
        reason: 'token revoked',
      });
    }
    const scrape = await freshGet(server.url, '/metrics');
    expect(metricIn(scrape, 'pgws_subject_cutoffs_total', { reason: 'disconnect' })).toBe(SOCKETS);
    expect(metricIn(scrape, 'pgws_subject_cutoffs_total', { reason: 'revoke' })).toBe(SOCKETS);
    expect(metricIn(scrape, 'pgws_closes_total', { reason: 'subject_limit' })).toBe(1);
  });

  test('a revocation outlives a restart: every worker of the restarted server refuses the token', async () => {
    const alice = ops.subject('alice');
    const old = await token(alice, nowSeconds() - 60);
    await using before = await start();
    const open = await sockets(before.url, old, 4);
    await ops.sql`SELECT pgws.revoke(${alice})`;
    for (const client of open) await within(client.closed, 10_000, 'a close by pgws.revoke');
    expect(await before.signal('SIGTERM')).toBe(0);

    await using after = await start();
    expect(await upgradeStatus(`ws://${after.url.host}/restart`, { authorization: `Bearer ${old}` })).toMatchObject({
      status: 401,
    });
    // Each socket is a fresh connection the kernel hands to either process, and each refuses.
    for (let i = 0; i < 9; i++) {
      const refused = await openMux(after.url, { bearer: old, ms: 15_000 });
      expect(await within(refused.closed, 10_000, 'the 4401')).toMatchObject({ code: 4401 });
    }
    using fresh = await connectMux(after.url, { bearer: await token(alice, nowSeconds() + 1), ms: 15_000 });
    expect(fresh.frames[0]).toMatchObject({ type: 'ready', subject: alice });
    const scrape = await freshGet(after.url, '/metrics');
    expect(metricIn(scrape, 'pgws_revocation_refusals_total', { reason: 'issued_before' })).toBe(10);
    expect(metricIn(scrape, 'pgws_revocations')).toBeGreaterThanOrEqual(1);
  });
});
