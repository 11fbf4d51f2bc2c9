/**
 * Acceptance tests of docs/PROTOCOL.md, "Cutting a subject off, and per-subject limits": `pgws.disconnect`,
 * `pgws.revoke` and `pgws.unrevoke` against bridges started in-process (two instances on one database, a
 * restart, a LISTEN connection that is down while a revoke is made), and `[auth] max_connections_per_subject`.
 * Every test has subjects of its own, so suites sharing the database never see each other's revocations.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { connect, upgradeStatus } from './client.ts';
import { databaseUrl, metric, startBridge, uniqueChannel, waitFor, within } from './harness.ts';
import { connectMux, openMux } from './mux.ts';
import { operator } from './pgws.ts';
import { startTcpProxy } from './proxy.ts';
import { authToml, nowSeconds, secretEnv, subjectToken as token } from './tokens.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

const ops = operator(`cut_${process.pid}_`);
const subject = ops.subject;
const bearer = (value: string) => ({ authorization: `Bearer ${value}` });
/** What a socket closed by a cut-off sees. */
const closedWith = (client: { closed: Promise<{ code: number; reason: string }> }, what: string) =>
  within(client.closed, 5000, what);

describe('pgws.disconnect', () => {
  test('closes every plain and multiplexed socket of the subject on every instance with 4403 and the reason, and no other', async () => {
    const channel = uniqueChannel('cut');
    await using a = await startBridge(authToml(), secretEnv);
    await using b = await startBridge(authToml(), secretEnv);
    const [alice, bob] = [subject('alice'), subject('bob')];
    const aliceToken = await token(alice);
    using plainOnA = await connect(a.wsUrl(channel), { headers: bearer(aliceToken) });
    using muxOnB = await connectMux(b.url, { bearer: aliceToken });
    using framedOnB = await connectMux(b.url);
    framedOnB.send({ type: 'auth', token: aliceToken });
    expect(await framedOnB.next('ready')).toMatchObject({ subject: alice });
    using bobOnB = await connectMux(b.url, { bearer: await token(bob) });

    await ops.sql`SELECT pgws.disconnect(${alice}, 'account locked')`;
    for (const client of [plainOnA, muxOnB, framedOnB]) {
      expect(await closedWith(client, "the close of alice's socket")).toEqual({ code: 4403, reason: 'account locked' });
    }
    expect(await bobOnB.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
    expect(await metric(b.url, 'pgws_subject_cutoffs_total', { reason: 'disconnect' })).toBe(2);
    expect(await metric(a.url, 'pgws_closes_total', { reason: 'disconnected' })).toBe(1);
    // The log names the subject, never the token.
    expect(b.logs.some((line) => line.includes('"cut off"') && line.includes(alice))).toBe(true);
    expect([...a.logs, ...b.logs].some((line) => line.includes(aliceToken))).toBe(false);
  });

  test('does not prevent new connections: the same token connects again at once; without a reason the close text is the default', async () => {
    await using t = await startBridge(authToml(), secretEnv);
    const alice = subject('alice');
    const aliceToken = await token(alice);
    using first = await connectMux(t.url, { bearer: aliceToken });
    await ops.sql`SELECT pgws.disconnect(${alice})`;
    expect(await closedWith(first, 'the close')).toEqual({ code: 4403, reason: 'disconnected by the server' });
    using again = await connectMux(t.url, { bearer: aliceToken });
    expect(again.frames[0]).toMatchObject({ type: 'ready', subject: alice });
  });
});

describe('pgws.revoke', () => {
  test('closes the open connections whose token it covers with 4403 on every instance, and refuses such tokens like invalid ones: 401, 4401 at the upgrade and in an auth frame', async () => {
    const channel = uniqueChannel('revoked');
    await using a = await startBridge(authToml(), secretEnv);
    await using b = await startBridge(authToml(), secretEnv);
    const alice = subject('alice');
    const [old, noIat] = [await token(alice, nowSeconds() - 60), await token(alice, 'none')];
    using plainOnA = await connect(a.wsUrl(channel), { headers: bearer(old) });
    using muxOnB = await connectMux(b.url, { bearer: noIat });

    await ops.sql`SELECT pgws.revoke(${alice})`;
    for (const client of [plainOnA, muxOnB]) {
      expect(await closedWith(client, 'the close of a socket using a revoked token')).toEqual({
        code: 4403,
        reason: 'token revoked',
      });
    }
    expect(await upgradeStatus(a.wsUrl(channel), bearer(old))).toMatchObject({ status: 401 });
    const atUpgrade = await openMux(b.url, { bearer: noIat });
    expect(await closedWith(atUpgrade, 'the 4401 at the upgrade')).toEqual({ code: 4401, reason: 'invalid token' });
    using anonymous = await connectMux(a.url);
    anonymous.send({ type: 'auth', token: old });
    expect(await closedWith(anonymous, 'the 4401 of the auth frame')).toEqual({ code: 4401, reason: 'invalid token' });
    // A token issued after `before` (here: after the revoke) is not covered.
    using fresh = await connectMux(b.url, { bearer: await token(alice, nowSeconds() + 1) });
    expect(fresh.frames[0]).toMatchObject({ type: 'ready', subject: alice });

    expect(await metric(a.url, 'pgws_revocation_refusals_total', { reason: 'issued_before' })).toBe(2);
    expect(await metric(b.url, 'pgws_revocation_refusals_total', { reason: 'no_iat' })).toBe(1);
    expect(await metric(b.url, 'pgws_subject_cutoffs_total', { reason: 'revoke' })).toBe(1);
    expect(await metric(a.url, 'pgws_auth_failures_total', { reason: 'revoked' })).toBe(2);
    expect(await metric(b.url, 'pgws_revocations')).toBeGreaterThanOrEqual(1);
    expect(a.logs.some((line) => line.includes('revoked token refused') && line.includes(alice))).toBe(true);
    expect([...a.logs, ...b.logs].some((line) => line.includes(old) || line.includes(noIat))).toBe(false);
  });

  test('with `before` in the past keeps the tokens issued after it, open and new; pgws.unrevoke lifts it', async () => {
    await using t = await startBridge(authToml(), secretEnv);
    const alice = subject('alice');
    const [older, newer] = [await token(alice, nowSeconds() - 7200), await token(alice, nowSeconds() - 60)];
    using covered = await connectMux(t.url, { bearer: older });
    using kept = await connectMux(t.url, { bearer: newer });
    await ops.sql`SELECT pgws.revoke(${alice}, now() - interval '1 hour')`;
    expect(await closedWith(covered, 'the close of the older token')).toMatchObject({ code: 4403 });
    expect(await kept.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
    using another = await connectMux(t.url, { bearer: newer });
    expect(another.frames[0]).toMatchObject({ type: 'ready', subject: alice });

    // Other tests' revocations share the database: only this one goes.
    const held = await metric(t.url, 'pgws_revocations');
    await ops.sql`SELECT pgws.unrevoke(${alice})`;
    await waitFor(
      async () => (await metric(t.url, 'pgws_revocations')) === held - 1,
      5000,
      'the revocation to be lifted',
    );
    using back = await connectMux(t.url, { bearer: older });
    expect(back.frames[0]).toMatchObject({ type: 'ready', subject: alice });
  });

  test('a restart never forgets one: a bridge started afterwards refuses the token before it accepts any', async () => {
    const channel = uniqueChannel('restart');
    const alice = subject('alice');
    const old = await token(alice, nowSeconds() - 60);
    await using first = await startBridge(authToml(), secretEnv);
    using open = await connectMux(first.url, { bearer: old });
    await ops.sql`SELECT pgws.revoke(${alice})`;
    await closedWith(open, 'the close before the restart');
    await first.stop();
    await using restarted = await startBridge(authToml(), secretEnv);
    expect(await upgradeStatus(restarted.wsUrl(channel), bearer(old))).toMatchObject({ status: 401 });
  });

  test('a revoke made while the LISTEN connection is down is applied once it is back, before any token is accepted', async () => {
    const channel = uniqueChannel('outage');
    const target = new URL(databaseUrl());
    await using proxy = startTcpProxy({ target: { host: target.hostname, port: Number(target.port || 5432) } });
    await using t = await startBridge(authToml(), {
      ...secretEnv,
      databaseUrl: proxy.url(databaseUrl()),
      database: 'reconnect_min_ms = 20\nreconnect_max_ms = 100\ncanary_interval_ms = 500',
    });
    const alice = subject('alice');
    const old = await token(alice, nowSeconds() - 60);
    using open = await connectMux(t.url, { bearer: old });
    // Down, and kept down: new connections go to a port nobody listens on.
    const nobody = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } });
    const deadPort = nobody.port;
    nobody.stop(true);
    proxy.retarget(deadPort);
    proxy.cut();
    await waitFor(async () => (await fetch(new URL('/healthz', t.url))).status === 503, 5000, 'the link to be down');
    await ops.sql`SELECT pgws.revoke(${alice})`;
    // Committed, but not heard: the socket is still open.
    expect(await open.request({ type: 'ping' })).toMatchObject({ type: 'pong' });

    proxy.retarget(Number(target.port || 5432));
    // Every attempt is refused for want of readiness (503) until the revocations were read; then 401, never a 101.
    let status = 503;
    while (status === 503) status = (await upgradeStatus(t.wsUrl(channel), bearer(old), 10_000)).status;
    expect(status).toBe(401);
    expect(await closedWith(open, 'the close after the reconnect')).toEqual({ code: 4403, reason: 'token revoked' });
  });
});

describe('the control channel', () => {
  test('a NOTIFY anyone sends on pgws.control lifts no revocation and disconnects no one', async () => {
    await using t = await startBridge(authToml(), secretEnv);
    const [alice, bob, carol] = [subject('alice'), subject('bob'), subject('carol')];
    const old = await token(alice, nowSeconds() - 60);
    using bobFirst = await connectMux(t.url, { bearer: await token(bob) });
    await ops.sql`SELECT pgws.disconnect(${bob})`;
    await closedWith(bobFirst, "bob's first socket to close");
    const [row] = await ops.sql`SELECT max(id)::int AS id FROM pgws.disconnects WHERE subject = ${bob}`;
    using bobAgain = await connectMux(t.url, { bearer: await token(bob) });
    using carolSocket = await connectMux(t.url, { bearer: await token(carol) });
    using aliceOld = await connectMux(t.url, { bearer: old });
    await ops.sql`SELECT pgws.revoke(${alice})`;
    await closedWith(aliceOld, "alice's socket to close");

    // Forged: a replay of bob's disconnect, a hint for alice (whose row is still there), an id of no row.
    await ops.sql`SELECT pg_notify('pgws.control', ${JSON.stringify({ disconnect: row?.['id'] })})`;
    await ops.sql`SELECT pg_notify('pgws.control', ${JSON.stringify({ revocation: alice })})`;
    await ops.sql`SELECT pg_notify('pgws.control', ${JSON.stringify({ disconnect: 2 ** 40 })})`;
    // A real disconnect after them: once it has arrived, the forged ones have been handled.
    await ops.sql`SELECT pgws.disconnect(${carol})`;
    await closedWith(carolSocket, "carol's socket to close");
    expect(await bobAgain.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
    const refused = await openMux(t.url, { bearer: old });
    expect(await closedWith(refused, 'the refusal of the revoked token')).toMatchObject({ code: 4401 });
  });

  test('is no channel a client may name: a plain upgrade gets 400, a subscribe bad_channel', async () => {
    await using t = await startBridge(`${authToml()}[channels.open]\npublic = true\n`, secretEnv);
    expect(await upgradeStatus(t.wsUrl('pgws.control'))).toMatchObject({ status: 400 });
    using mux = await connectMux(t.url);
    expect(await mux.request({ type: 'subscribe', channel: 'pgws.control' })).toMatchObject({ code: 'bad_channel' });
  });

  test('a bridge that may not read the revocations accepts no token, serves anonymous sockets, and names the GRANT', async () => {
    const role = `pgws_unprivileged_${process.pid}`;
    await ops.sql.unsafe(`DROP ROLE IF EXISTS "${role}"; CREATE ROLE "${role}" NOLOGIN`);
    try {
      const url = new URL(databaseUrl());
      url.searchParams.set('role', role);
      await using t = await startBridge(`${authToml()}[channels.open]\npublic = true\n`, {
        ...secretEnv,
        databaseUrl: url.href,
        database: 'canary_interval_ms = 300',
        waitReady: false,
      });
      await waitFor(() => t.logs.some((line) => line.includes('GRANT SELECT ON pgws.revocations')), 10_000, 'the log');
      const readyz = await (await fetch(new URL('/readyz', t.url))).json();
      expect(readyz).toMatchObject({ ready: false, revocationsCurrent: false });
      const closed = uniqueChannel('closed');
      expect(await upgradeStatus(t.wsUrl(closed), bearer(await token(subject('alice'))))).toMatchObject({
        status: 503,
      });
      using anonymous = await connectMux(t.url);
      expect(await anonymous.subscribe('open')).toMatchObject({ type: 'subscribed' });
    } finally {
      await ops.sql.unsafe(`DROP ROLE IF EXISTS "${role}"`);
    }
  });
});

describe('max_connections_per_subject', () => {
  test('one more plain socket of the subject gets 429 subject_limit, one more multiplexed socket 4429 at the upgrade or at its auth frame', async () => {
    const channel = uniqueChannel('limit');
    await using t = await startBridge(authToml('max_connections_per_subject = 2'), secretEnv);
    const alice = subject('alice');
    const aliceToken = await token(alice);
    using plain = await connect(t.wsUrl(channel), { headers: bearer(aliceToken) });
    using mux = await connectMux(t.url, { bearer: aliceToken });
    expect(await upgradeStatus(t.wsUrl(channel), bearer(aliceToken))).toMatchObject({ status: 429 });
    const atUpgrade = await openMux(t.url, { bearer: aliceToken });
    expect(await closedWith(atUpgrade, 'the 4429 at the upgrade')).toEqual({
      code: 4429,
      reason: 'too many connections for this subject',
    });
    using anonymous = await connectMux(t.url);
    anonymous.send({ type: 'auth', token: aliceToken });
    expect(await closedWith(anonymous, 'the 4429 of the auth frame')).toMatchObject({ code: 4429 });
    expect(await metric(t.url, 'pgws_upgrades_refused_total', { reason: 'subject_limit' })).toBe(1);
    expect(await metric(t.url, 'pgws_closes_total', { reason: 'subject_limit' })).toBe(2);
    expect(plain.socket.readyState).toBe(WebSocket.OPEN);
    expect(await mux.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
  });

  test('counts neither anonymous sockets nor other subjects; a refresh takes no second slot; a closed socket frees its slot', async () => {
    await using t = await startBridge(authToml('max_connections_per_subject = 1'), secretEnv);
    const [alice, bob] = [subject('alice'), subject('bob')];
    using aliceSocket = await connectMux(t.url, { bearer: await token(alice) });
    using bobSocket = await connectMux(t.url, { bearer: await token(bob) });
    using anonymous = await connectMux(t.url);
    using another = await connectMux(t.url);
    aliceSocket.send({ type: 'auth', token: await token(alice, nowSeconds() + 1) });
    expect(await aliceSocket.next('ready')).toMatchObject({ subject: alice });
    expect(await bobSocket.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
    expect([anonymous.socket.readyState, another.socket.readyState]).toEqual([WebSocket.OPEN, WebSocket.OPEN]);

    const connections = await metric(t.url, 'pgws_connections');
    aliceSocket.socket.close();
    await waitFor(async () => (await metric(t.url, 'pgws_connections')) < connections, 5000, 'the close to be seen');
    using next = await connectMux(t.url, { bearer: await token(alice) });
    expect(next.frames[0]).toMatchObject({ type: 'ready', subject: alice });
  });
});
