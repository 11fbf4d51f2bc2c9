/**
 * `[database] ingest` on the database side: `pgws.send` NOTIFYs a channel's bridges only while its `wake` flag
 * is on, `pgws.wake(channels, on)` sets it (and is not for PUBLIC), and the install script adds the flag to
 * a `pgws.streams` installed before it existed.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import postgres from 'postgres';
import { CHANNEL_WAKE } from '../src/channels/reference.ts';
import { databaseUrl, uniqueChannel, within } from './harness.ts';
import { installPgws, scratchDatabase } from './pgws.ts';

// Here, not only in test/setup.ts: bun:test's setDefaultTimeout is per file, and the preload's reaches only the first.
setDefaultTimeout(60_000);

/** A LISTEN session on `channel` that collects payloads, and a writer beside it. */
async function listening(url: string, channel: string) {
  const listener = postgres(url, { max: 1, onnotice: () => {} });
  const writer = postgres(url, { max: 1, onnotice: () => {} });
  const payloads: string[] = [];
  let arrived = Promise.withResolvers<void>();
  await listener.listen(channel, (payload) => {
    payloads.push(payload);
    arrived.resolve();
    arrived = Promise.withResolvers<void>();
  });
  return {
    writer,
    payloads,
    /** Resolves once `count` payloads arrived. */
    async received(count: number) {
      while (payloads.length < count) await within(arrived.promise, 5000, `${count} notifications on ${channel}`);
      return payloads.slice(0, count);
    },
    async [Symbol.asyncDispose]() {
      await Promise.all([listener.end({ timeout: 1 }), writer.end({ timeout: 1 })]);
    },
  };
}

describe('pgws.send and the wake flag', () => {
  test('pgws.send wakes with a NOTIFY by default, not after pgws.wake(channels, false), and again after true', async () => {
    await installPgws();
    const channel = uniqueChannel('wake');
    await using session = await listening(databaseUrl(), channel);
    const { writer } = session;
    await writer`SELECT pgws.send(${channel}, 'one')`;
    expect(await session.received(1)).toEqual([`${CHANNEL_WAKE}1`]);

    await writer`SELECT pgws.wake(${[channel]}::text[], false)`;
    await writer`SELECT pgws.send(${channel}, 'two')`;
    // A NOTIFY after it, from the same session: notifications arrive in commit order, so the marker
    // arriving alone proves the send before it woke nobody.
    await writer`SELECT pg_notify(${channel}, 'marker')`;
    expect(await session.received(2)).toEqual([`${CHANNEL_WAKE}1`, 'marker']);

    await writer`SELECT pgws.wake(${[channel]}::text[], true)`;
    await writer`SELECT pgws.send(${channel}, 'three')`;
    expect(await session.received(3)).toEqual([`${CHANNEL_WAKE}1`, 'marker', `${CHANNEL_WAKE}3`]);
    const rows = await writer`SELECT seq, payload FROM pgws.messages WHERE channel = ${channel} ORDER BY seq`;
    expect(rows.map((row) => `${row['seq']}:${row['payload']}`)).toEqual(['1:one', '2:two', '3:three']);
  });

  test('pgws.wake creates the rows of channels nobody sent on yet, so their first send already obeys it', async () => {
    await installPgws();
    const channel = uniqueChannel('wake_new');
    await using session = await listening(databaseUrl(), channel);
    const { writer } = session;
    await writer`SELECT pgws.wake(${[channel, channel]}::text[], false)`;
    const [stream] = await writer`SELECT seq, wake FROM pgws.streams WHERE channel = ${channel}`;
    expect({ seq: Number(stream?.['seq']), wake: stream?.['wake'] }).toEqual({ seq: 0, wake: false });
    expect(Number((await writer`SELECT pgws.send(${channel}, 'first') AS seq`)[0]?.['seq'])).toBe(1);
    await writer`SELECT pg_notify(${channel}, 'marker')`;
    expect(await session.received(1)).toEqual(['marker']);
  });

  test('pgws.wake is not executable by PUBLIC, pgws.send and pgws.heads are', async () => {
    await installPgws();
    const sql = postgres(databaseUrl(), { max: 1, onnotice: () => {} });
    try {
      const rows = await sql`
        SELECT p.proname, EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                                  WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE') AS public
        FROM pg_proc p WHERE p.pronamespace = 'pgws'::regnamespace AND p.proname IN ('send', 'heads', 'wake')
        ORDER BY p.proname`;
      expect(rows.map((row) => `${row['proname']}:${row['public']}`)).toEqual([
        'heads:true',
        'send:true',
        'wake:false',
      ]);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  test('the install script adds the flag to a pgws.streams installed before it, keeping its rows', async () => {
    await using db = await scratchDatabase();
    await installPgws(db.url);
    await db.sql`SELECT pgws.send('old', 'kept')`;
    // The table as the install before this flag left it.
    await db.sql`ALTER TABLE pgws.streams DROP COLUMN wake`;
    await installPgws(db.url);
    const [row] = await db.sql`SELECT seq, wake FROM pgws.streams WHERE channel = 'old'`;
    expect({ seq: Number(row?.['seq']), wake: row?.['wake'] }).toEqual({ seq: 1, wake: true });
    expect(Number((await db.sql`SELECT pgws.send('old', 'next') AS seq`)[0]?.['seq'])).toBe(2);
  });
});
