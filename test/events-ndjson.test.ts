/**
 * Acceptance tests of `GET /events` with `Accept: application/x-ndjson` (docs/PROTOCOL.md "Server-Sent Events",
 * last point): the same stream as newline-delimited JSON, each line exactly a pgws.v1 server frame, `message`
 * with its `epoch` added. The same engine serves it, so resume works the same (with `?since=`).
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { fakeClock } from './clock.ts';
import { streamEvents } from './events.ts';
import { databaseUrl, metric, startBridge, uniqueChannel } from './harness.ts';

// Here, not only in test/setup.ts: bun:test's setDefaultTimeout is per file, and the preload's reaches only the first.
setDefaultTimeout(60_000);

describe('GET /events as NDJSON', () => {
  test('streams pgws.v1 frames one per line: subscribed, then message with its epoch added', async () => {
    const channel = uniqueChannel();
    await using t = await startBridge(`[channels."${channel}"]\nhistory = 10\n`);
    using stream = await streamEvents(t.url, `channel=${channel}`, { format: 'ndjson' });
    expect(stream.headers.get('content-type')).toBe('application/x-ndjson; charset=utf-8');
    const subscribed = await stream.next('subscribed');
    expect(subscribed.data).toEqual({ type: 'subscribed', channel, epoch: expect.any(String), seq: 0 });
    await t.notify(channel, 'one line\nand another');
    const message = await stream.next('message');
    expect(message.data).toEqual({
      type: 'message',
      channel,
      seq: 1,
      epoch: subscribed.data['epoch'],
      payload: 'one line\nand another',
    });
    // Every line is one JSON object: a newline in a payload is escaped inside its string.
    expect(
      stream
        .text()
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line).type),
    ).toEqual(['subscribed', 'message']);
    expect(await metric(t.url, 'pgws_connections', { transport: 'ndjson' })).toBe(1);
  });

  test('sends a gap frame when the LISTEN connection is lost', async () => {
    const app = uniqueChannel('app');
    const channel = uniqueChannel();
    await using t = await startBridge('', {
      databaseUrl: `${databaseUrl()}?application_name=${app}`,
      database: 'reconnect_min_ms = 20',
    });
    using stream = await streamEvents(t.url, `channel=${channel}`, { format: 'ndjson' });
    await stream.next('subscribed');
    await t.sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ${app}`;
    expect((await stream.next('gap', 10_000)).data).toEqual({
      type: 'gap',
      channel,
      epoch: expect.any(String),
      seq: 0,
    });
  });

  test('keeps an idle stream alive with empty lines, and resumes from ?since= with the SSE cursor', async () => {
    const clock = fakeClock();
    const channel = uniqueChannel();
    await using t = await startBridge(`[channels."${channel}"]\nhistory = 10\n`, { clock });
    const sse = await streamEvents(t.url, `channel=${channel}`);
    const cursor = (await sse.next('subscribed')).id ?? '';
    sse.close();
    await t.notify(channel, 'missed');
    using stream = await streamEvents(t.url, `channel=${channel}&since=${cursor}`, { format: 'ndjson' });
    expect((await stream.next('subscribed')).data).toMatchObject({ seq: 0, recovered: true });
    expect((await stream.next('message')).data).toMatchObject({ seq: 1, payload: 'missed' });
    clock.advance(7000);
    clock.advance(7000);
    expect((await stream.next(':')).comment).toBe('');
  });
});
