/**
 * Acceptance tests of `pgws.v1` across database outages: the LISTEN backend killed (the bridge
 * reconnects at once) and the database stopped (it stays down for a while). Multiplexed sockets stay
 * open and learn of the break through `gap`; plain sockets are closed with 1012 at the same moment.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import postgres from 'postgres';
import { connect } from './client.ts';
import { databaseUrl, metric, startBridge, startOwnDatabase, uniqueChannel, waitFor, within } from './harness.ts';
import { connectMux } from './mux.ts';

// Here, not only in test/setup.ts: bun:test's setDefaultTimeout is per file, and the preload's reaches only the first.
setDefaultTimeout(60_000);

const health = async (base: URL) => (await fetch(new URL('/healthz', base))).status;

describe('gaps', () => {
  test('a killed LISTEN backend sends each subscribed channel a gap with a new epoch at seq 0, and plain sockets 1012', async () => {
    const app = uniqueChannel('app');
    const [kept, raw] = [uniqueChannel('kept'), uniqueChannel('raw')];
    await using t = await startBridge(`[channels."${kept}"]\nhistory = 10\n`, {
      databaseUrl: `${databaseUrl()}?application_name=${app}`,
      database: 'reconnect_min_ms = 20',
    });
    using mux = await connectMux(t.url);
    const before = await mux.subscribe(kept);
    await mux.subscribe(raw);
    using plain = await connect(t.wsUrl(raw));
    await t.notify(kept, 'before');
    await mux.received(kept, 1);
    await t.sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ${app}`;
    const gaps = [await mux.next('gap', 10_000), await mux.next('gap', 10_000)];
    expect(gaps.map((g) => g.channel).sort()).toEqual([kept, raw].sort());
    for (const gap of gaps)
      expect(gap).toEqual({ type: 'gap', channel: gap.channel ?? '', epoch: expect.any(String), seq: 0 });
    const epoch = gaps.find((g) => g.channel === kept)?.epoch;
    expect(epoch).not.toBe(before.epoch);
    expect((await within(plain.closed, 5000, 'the plain socket to close')).code).toBe(1012);
    await waitFor(async () => (await health(t.url)) === 200, 10_000, 'the LISTEN connection to be back');
    await t.notify(kept, 'after');
    expect(await mux.next('message', 5000)).toEqual({ type: 'message', channel: kept, seq: 1, payload: 'after' });
    expect(mux.socket.readyState).toBe(WebSocket.OPEN);
    // The old position is gone; the new epoch's is recoverable.
    using late = await connectMux(t.url);
    expect(await late.subscribe(kept, { since: { epoch: before.epoch ?? '', seq: 1 } })).toMatchObject({
      recovered: false,
      epoch,
      seq: 1,
    });
    using later = await connectMux(t.url);
    expect(await later.subscribe(kept, { since: { epoch: epoch ?? '', seq: 0 } })).toMatchObject({ recovered: true });
    expect(await later.next('message')).toMatchObject({ seq: 1, payload: 'after' });
    expect(await metric(t.url, 'pgws_gaps_total')).toBeGreaterThanOrEqual(1);
  });

  test('with the database down: a gap at the moment of loss, subscribe and publish are unavailable, and all works again after it is back', async () => {
    await using db = await startOwnDatabase();
    const writable = uniqueChannel('writable');
    await using t = await startBridge(`[channels."${writable}"]\npublish = true\n`, {
      databaseUrl: db.url,
      database: 'reconnect_min_ms = 20\nreconnect_max_ms = 200',
    });
    const [channel, other] = [uniqueChannel('down'), uniqueChannel('later')];
    using mux = await connectMux(t.url);
    await mux.subscribe(channel);
    await db.stop();
    // The database stays down: the gap must come now, not when it is back.
    const gap = await mux.next('gap', 5000);
    expect(gap).toMatchObject({ channel, seq: 0 });
    await waitFor(async () => (await health(t.url)) === 503, 5000, 'health to turn 503');
    expect(await mux.request({ type: 'subscribe', id: 'while down', channel: other })).toMatchObject({
      type: 'error',
      id: 'while down',
      code: 'unavailable',
    });
    expect(await mux.request({ type: 'publish', id: 'pub', channel: writable, payload: 'x' })).toMatchObject({
      type: 'error',
      id: 'pub',
      code: 'unavailable',
    });
    expect(await metric(t.url, 'pgws_publishes_total', { outcome: 'unavailable' })).toBe(1);
    await db.start();
    await waitFor(async () => (await health(t.url)) === 200, 15_000, 'health to turn 200');
    await mux.subscribe(other);
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    await sql`SELECT pg_notify(${channel}, 'back')`;
    await sql`SELECT pg_notify(${other}, 'new')`;
    await sql.end();
    expect(await mux.next('message', 5000)).toMatchObject({ channel, seq: 1, payload: 'back' });
    expect(await mux.next('message', 5000)).toMatchObject({ channel: other, seq: 1, payload: 'new' });
  });
});
