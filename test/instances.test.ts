/**
 * Several bridge instances on one database, as behind a load balancer: PostgreSQL is the only shared piece.
 * Every instance LISTENs for itself, so each delivers every notification; positions are per instance.
 */
import { expect, setDefaultTimeout, test } from 'bun:test';
import { startBridge, uniqueChannel } from './harness.ts';
import { connectMux } from './mux.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

test('two instances on one database both deliver, a publish through one reaches the other, a resume there is not recovered', async () => {
  const channel = uniqueChannel();
  const toml = `[channels."${channel}"]\nhistory = 10\npublish = true\n`;
  await using a = await startBridge(toml);
  await using b = await startBridge(toml);
  using onA = await connectMux(a.url);
  using onB = await connectMux(b.url);
  const subscribedA = await onA.subscribe(channel);
  await onB.subscribe(channel);

  await a.notify(channel, 'from SQL');
  expect((await onA.received(channel, 1))[0]?.['payload']).toBe('from SQL');
  expect((await onB.received(channel, 1))[0]?.['payload']).toBe('from SQL');

  expect(await onA.request({ type: 'publish', channel, payload: 'through A' })).toMatchObject({ type: 'published' });
  expect((await onB.received(channel, 2))[1]?.['payload']).toBe('through A');

  // Epochs belong to one process: a position from A means nothing to B.
  using resumed = await connectMux(b.url);
  const answer = await resumed.subscribe(channel, {
    since: { epoch: String(subscribedA['epoch']), seq: 1 },
  });
  expect(answer).toMatchObject({ type: 'subscribed', recovered: false });
  expect(answer['epoch']).not.toBe(subscribedA['epoch']);
});
