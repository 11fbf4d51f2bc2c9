/**
 * The typed client (src/client/client.ts) on durable channels (docs/PROTOCOL.md "Durable channels"), with no
 * API of its own for them: its resume with `since` recovers on another instance, and a plain NOTIFY on a
 * durable channel (no seq) reaches `onMessage` without moving the position it resumes from. The client reaches
 * the bridges through test/proxy.ts, so switching instances is what a load balancer does: same URL, new server.
 */
import { beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { createClient } from '../src/client/client.ts';
import { startBridge, type TestBridge, uniqueChannel, waitFor } from './harness.ts';
import { installPgws } from './pgws.ts';
import { startTcpProxy, type TcpProxy } from './proxy.ts';
import { opened, recorder } from './sdk.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

beforeAll(() => installPgws());

const durable = (channel: string) => `[channels."${channel}"]\ndurable = true\n`;
const port = (t: TestBridge) => Number(t.url.port);

/** A client through `proxy`, reconnecting fast. */
const through = (proxy: TcpProxy) =>
  createClient({ url: `ws://127.0.0.1:${proxy.port}/`, reconnect: { minMs: 20, maxMs: 200 } });

/** Sends each payload with pgws.send, one transaction each. */
async function send(t: TestBridge, channel: string, ...payloads: string[]): Promise<void> {
  for (const payload of payloads) await t.sql`SELECT pgws.send(${channel}, ${payload})`;
}

describe('the client on durable channels', () => {
  test('resumes on another instance after the first one stopped: what was sent meanwhile arrives once, in order, with no gap', async () => {
    const channel = uniqueChannel('dur');
    const a = await startBridge(durable(channel));
    await using b = await startBridge(durable(channel));
    await using proxy = startTcpProxy({ target: { host: '127.0.0.1', port: port(a) } });
    const client = through(proxy);
    const seen = recorder();
    client.subscribe(channel, seen.handlers);
    await seen.answered(1);
    await send(a, channel, 'one', 'two');
    await seen.until(2);
    await a.stop();
    await waitFor(() => client.state === 'connecting', 5000, 'the client to notice A stopped');
    // Committed while the client can reach no instance (the proxy still points at A): only a resume brings them.
    await send(b, channel, 'three', 'four');
    proxy.retarget(port(b));
    await seen.answered(2);
    await send(b, channel, 'five');
    await seen.until(5);
    expect(seen.events).toEqual(['1:"one"', '2:"two"', '3:"three"', '4:"four"', '5:"five"']);
    expect(seen.gaps).toEqual([]);
    expect(seen.subscribed).toEqual([
      { epoch: expect.any(String), seq: 0 },
      { epoch: seen.subscribed[0]?.epoch ?? '', seq: 2, recovered: true },
    ]);
    await client.close();
  });

  test('a plain pg_notify on a durable channel reaches onMessage and leaves the position the next resume starts from', async () => {
    const channel = uniqueChannel('dur');
    await using t = await startBridge(durable(channel));
    await using proxy = startTcpProxy({ target: { host: '127.0.0.1', port: port(t) } });
    const client = through(proxy);
    const seen = recorder();
    client.subscribe(channel, seen.handlers);
    await seen.answered(1);
    await send(t, channel, 'one', 'two');
    await seen.until(2);
    // After "two" has arrived: the plain NOTIFY is delivered live, ahead of rows still being read otherwise.
    await t.notify(channel, 'plain');
    await seen.until(3);
    proxy.cut();
    await waitFor(() => client.state === 'connecting', 5000, 'the client to notice the cut');
    await send(t, channel, 'three');
    await opened(client);
    await seen.answered(2);
    await send(t, channel, 'four');
    await seen.until(5);
    // The plain one is shown at the position it arrived at (seq 2): it took no seq of its own.
    expect(seen.events).toEqual(['1:"one"', '2:"two"', '2:"plain"', '3:"three"', '4:"four"']);
    expect(seen.gaps).toEqual([]);
    expect(seen.subscribed[1]).toMatchObject({ seq: 2, recovered: true });
    await client.close();
  });
});
