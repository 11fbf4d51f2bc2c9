/**
 * Durable channels over real sockets and a real PostgreSQL (docs/PROTOCOL.md "Durable channels: positions
 * owned by the database"): the database numbers the stream, every bridge reports the same positions, a resume
 * recovers on another instance and after a restart within retention, replays page from the table, and a lost
 * LISTEN connection breaks nothing.
 */
import { beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { databaseUrl, metric, startBridge, uniqueChannel, waitFor, within } from './harness.ts';
import { connectMux, type Frame } from './mux.ts';
import { installPgws } from './pgws.ts';
import { startTcpProxy } from './proxy.ts';

setDefaultTimeout(60_000);

beforeAll(() => installPgws());

const durable = (channel: string, extra = '') => `[channels."${channel}"]\ndurable = true\n${extra}\n`;
const seqs = (frames: readonly Frame[]) => frames.map((frame) => frame.seq);
const payloads = (frames: readonly Frame[]) => frames.map((frame) => frame.payload);
const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);

/** Sends `count` messages `prefix1`… through pgws.send, one transaction each; returns their seqs. */
async function send(sql: import('postgres').Sql, channel: string, count: number, prefix = 'm'): Promise<number[]> {
  const out: number[] = [];
  for (let i = 1; i <= count; i++) {
    const [row] = await sql`SELECT pgws.send(${channel}, ${`${prefix}${i}`}) AS seq`;
    out.push(Number(row?.['seq']));
  }
  return out;
}

describe('the database numbers a durable channel', () => {
  test('pgws.send returns consecutive seqs, a rollback leaves no hole, and subscribers get them in order', async () => {
    const channel = uniqueChannel('dur');
    await using t = await startBridge(durable(channel));
    using client = await connectMux(t.url);
    const subscribed = await client.subscribe(channel);
    expect(subscribed.seq).toBe(0);
    await t.sql
      .begin(async (tx) => {
        await tx`SELECT pgws.send(${channel}, 'rolled back')`;
        throw new Error('roll back');
      })
      .catch(() => {});
    expect(await send(t.sql, channel, 3)).toEqual([1, 2, 3]);
    const got = await client.received(channel, 3);
    expect(seqs(got)).toEqual([1, 2, 3]);
    expect(payloads(got)).toEqual(['m1', 'm2', 'm3']);
  });

  test('two bridges report the same epoch and seq for the same message', async () => {
    const channel = uniqueChannel('dur');
    await using a = await startBridge(durable(channel));
    await using b = await startBridge(durable(channel));
    using onA = await connectMux(a.url);
    using onB = await connectMux(b.url);
    const [fromA, fromB] = [await onA.subscribe(channel), await onB.subscribe(channel)];
    expect(fromA.epoch).toBe(fromB.epoch ?? '');
    await send(a.sql, channel, 2);
    expect(await onA.received(channel, 2)).toEqual(await onB.received(channel, 2));
  });

  test('a publish on a durable channel goes through pgws.send and its answer carries the seq', async () => {
    const channel = uniqueChannel('dur');
    await using t = await startBridge(durable(channel, 'publish = true'));
    using client = await connectMux(t.url);
    await client.subscribe(channel);
    await send(t.sql, channel, 1);
    const answer = await client.request({ type: 'publish', channel, payload: 'from a client' });
    expect(answer).toMatchObject({ type: 'published', channel, seq: 2 });
    expect(payloads(await client.received(channel, 2))).toEqual(['m1', 'from a client']);
  });

  test('a plain pg_notify on a durable channel is delivered live without a seq and never replayed', async () => {
    const channel = uniqueChannel('dur');
    await using t = await startBridge(durable(channel));
    using client = await connectMux(t.url);
    const start = await client.subscribe(channel);
    await t.notify(channel, 'not durable');
    await send(t.sql, channel, 1);
    const got = await client.received(channel, 2);
    expect(got[0]).toEqual({ type: 'message', channel, payload: 'not durable' });
    expect(got[1]).toMatchObject({ seq: 1, payload: 'm1' });
    using late = await connectMux(t.url);
    await late.subscribe(channel, { since: { epoch: start.epoch ?? '', seq: 0 } });
    expect(payloads(await late.received(channel, 1))).toEqual(['m1']);
  });
});

describe('resume anywhere within retention', () => {
  test('a resume on another instance recovers exactly the missed messages, then live ones', async () => {
    const channel = uniqueChannel('dur');
    await using a = await startBridge(durable(channel));
    using first = await connectMux(a.url);
    const start = await first.subscribe(channel);
    await send(a.sql, channel, 5);
    const seen = await first.received(channel, 2);
    first.socket.close();
    await using b = await startBridge(durable(channel));
    using again = await connectMux(b.url);
    const since = { epoch: start.epoch ?? '', seq: seen[1]?.seq ?? 0 };
    expect(await again.subscribe(channel, { since })).toMatchObject({ recovered: true, seq: 2, epoch: since.epoch });
    await send(b.sql, channel, 1, 'live');
    expect(payloads(await again.received(channel, 4))).toEqual(['m3', 'm4', 'm5', 'live1']);
  });

  test("a resume past the instance's own head waits for its reader to read the rows, then recovers", async () => {
    const channel = uniqueChannel('dur');
    await using a = await startBridge(durable(channel));
    // B's wake-ups on the channel are dropped until `deaf` is lifted: B reads nothing A's client has.
    let deaf = true;
    const { hostname, port } = new URL(databaseUrl());
    await using proxy = startTcpProxy({
      target: { host: hostname, port: Number(port || 5432) },
      dropNotifications: (name) => deaf && name === channel,
    });
    await using b = await startBridge(durable(channel), { databaseUrl: proxy.url(databaseUrl()) });
    using onA = await connectMux(a.url);
    const { epoch = '' } = await onA.subscribe(channel);
    await send(a.sql, channel, 3);
    await onA.received(channel, 3);
    using onB = await connectMux(b.url);
    const answer = onB.request({ type: 'subscribe', channel, since: { epoch, seq: 2 } });
    await waitFor(
      async () => (await metric(b.url, 'pgws_subscriptions', { mode: 'multiplexed' })) === 1,
      5000,
      'B to take the resume in',
    );
    deaf = false;
    await send(a.sql, channel, 1, 'after');
    expect(await answer).toMatchObject({ type: 'subscribed', epoch, seq: 2, recovered: true });
    expect(payloads(await onB.received(channel, 2))).toEqual(['m3', 'after1']);
    expect(seqs(onB.messages(channel))).toEqual([3, 4]);
  });

  test("a resume past the database's head waits for rows that never come, then is not recovered and goes live", async () => {
    const channel = uniqueChannel('dur');
    await using t = await startBridge(durable(channel));
    using client = await connectMux(t.url);
    const { epoch = '' } = await client.subscribe(channel);
    await send(t.sql, channel, 2);
    using resumed = await connectMux(t.url);
    const answer = await resumed.subscribe(channel, { since: { epoch, seq: 5 } }, 15_000);
    expect(answer).toMatchObject({ epoch, seq: 2, recovered: false });
    await send(t.sql, channel, 1, 'live');
    expect(await resumed.next('message')).toMatchObject({ seq: 3, payload: 'live1' });
  });

  test('a resume of 2,500 messages from the table is paged and arrives complete and in order', async () => {
    const channel = uniqueChannel('dur');
    await using t = await startBridge(durable(channel));
    const [{ epoch } = { epoch: '' }] = await t.sql`SELECT epoch FROM pgws.heads(${[channel]}::text[])`;
    await t.sql`SELECT pgws.send(${channel}, 'bulk ' || n) FROM generate_series(1, 2500) n`;
    using client = await connectMux(t.url);
    expect(await client.subscribe(channel, { since: { epoch: String(epoch), seq: 0 } })).toMatchObject({
      recovered: true,
      seq: 0,
    });
    const got = await client.received(channel, 2500, 30_000);
    expect(seqs(got)).toEqual(range(1, 2500));
  });

  test('a resume past what retention kept is not recovered and replays nothing', async () => {
    const channel = uniqueChannel('dur');
    await using t = await startBridge(durable(channel, 'retain = 3'));
    const [{ epoch } = { epoch: '' }] = await t.sql`SELECT epoch FROM pgws.heads(${[channel]}::text[])`;
    await send(t.sql, channel, 10);
    await waitFor(
      async () => {
        const [row] = await t.sql`SELECT count(*)::int AS n FROM pgws.messages WHERE channel = ${channel}`;
        return row?.['n'] === 3;
      },
      10_000,
      'retention to keep 3 rows',
    );
    using client = await connectMux(t.url);
    const answer = await client.subscribe(channel, { since: { epoch: String(epoch), seq: 2 } });
    expect(answer).toMatchObject({ recovered: false, seq: 10 });
    using kept = await connectMux(t.url);
    expect(await kept.subscribe(channel, { since: { epoch: String(epoch), seq: 7 } })).toMatchObject({
      recovered: true,
    });
    expect(seqs(await kept.received(channel, 3))).toEqual([8, 9, 10]);
  });
});

describe('last', () => {
  test('last: K on a durable channel starts just before the K newest messages', async () => {
    const channel = uniqueChannel('dur');
    await using t = await startBridge(durable(channel));
    // Read by the bridge before the `last` is asked: a row committed is not yet a row the bridge has read.
    using watcher = await connectMux(t.url);
    await watcher.subscribe(channel);
    await send(t.sql, channel, 7);
    await watcher.received(channel, 7);
    using client = await connectMux(t.url);
    const answer = await client.request({ type: 'subscribe', channel, last: 3 });
    expect(answer).toMatchObject({ type: 'subscribed', seq: 4 });
    expect(answer['recovered']).toBeUndefined();
    expect(seqs(await client.received(channel, 3))).toEqual([5, 6, 7]);
  });

  test('last with since, or on a channel that keeps nothing, is bad_request', async () => {
    const channel = uniqueChannel('dur');
    await using t = await startBridge(durable(channel));
    using client = await connectMux(t.url);
    const both = await client.request({ type: 'subscribe', channel, last: 2, since: { epoch: 'e', seq: 0 } });
    expect(both).toMatchObject({ type: 'error', code: 'bad_request' });
    const plain = await client.request({ type: 'subscribe', channel: uniqueChannel('raw'), last: 2 });
    expect(plain).toMatchObject({ type: 'error', code: 'bad_request' });
  });
});

describe('no gap for a reconnect the bridge can repair', () => {
  test('a lost LISTEN connection: what was sent meanwhile arrives in order, with no gap and no 1012', async () => {
    const channel = uniqueChannel('dur');
    // Its own application_name: only this bridge's LISTEN backend is terminated, not those of other runs.
    const app = uniqueChannel('app');
    await using t = await startBridge(durable(channel), { databaseUrl: `${databaseUrl()}?application_name=${app}` });
    using client = await connectMux(t.url);
    await client.subscribe(channel);
    const plain = new WebSocket(t.wsUrl(channel));
    const plainFrames: string[] = [];
    plain.onmessage = (event) => plainFrames.push(String(event.data));
    await within(new Promise((resolve) => (plain.onopen = resolve)), 5000, 'the plain socket to open');
    await send(t.sql, channel, 2, 'before');
    await client.received(channel, 2);
    const killed = await t.sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
      WHERE application_name = ${app} AND query ILIKE 'LISTEN%'`;
    expect(killed.length).toBe(1);
    await send(t.sql, channel, 3, 'during');
    await waitFor(() => client.messages(channel).length === 5, 20_000, 'the catch-up');
    expect(payloads(client.messages(channel))).toEqual(['before1', 'before2', 'during1', 'during2', 'during3']);
    expect(client.frames.some((frame) => frame.type === 'gap')).toBe(false);
    expect(plain.readyState).toBe(WebSocket.OPEN);
    await waitFor(() => plainFrames.length === 5, 10_000, 'the plain socket to catch up');
    plain.close();
  });
});
