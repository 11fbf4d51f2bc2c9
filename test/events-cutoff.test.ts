/**
 * Streams and cut-offs (docs/PROTOCOL.md "Cutting a subject off, and per-subject limits"): `pgws.disconnect` and
 * `pgws.revoke` end a subject's `GET /events` streams as they close its sockets, the stream's last comment naming
 * the 4403 a socket would get; a revoked token opens no stream; `max_connections_per_subject` counts streams
 * beside sockets; and the client over streams hears `cut_off` as over a WebSocket.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { createClient } from '../src/client/client.ts';
import { type EventsClient, openEvents, type Refused, streamEvents } from './events.ts';
import { metric, startBridge, uniqueChannel, waitFor } from './harness.ts';
import { connectMux, openMux } from './mux.ts';
import { operator } from './pgws.ts';
import { recorder } from './sdk.ts';
import { authToml, nowSeconds, secretEnv, subjectToken as token } from './tokens.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

const ops = operator(`cutsse_${process.pid}_`);
const bearer = (value: string) => ({ headers: { authorization: `Bearer ${value}` } });

describe('streams and cut-offs', () => {
  test('pgws.disconnect ends the subject’s streams with a last comment naming 4403 and the reason, and no other stream', async () => {
    const channel = uniqueChannel('cut');
    await using t = await startBridge(authToml(), secretEnv);
    const [alice, bob] = [ops.subject('alice'), ops.subject('bob')];
    const aliceStream = await streamEvents(t.url, `channel=${channel}`, bearer(await token(alice)));
    using bobStream = await streamEvents(t.url, `channel=${channel}`, bearer(await token(bob)));
    await aliceStream.next('subscribed');
    await bobStream.next('subscribed');
    await ops.sql`SELECT pgws.disconnect(${alice}, 'account locked')`;
    await aliceStream.ended;
    expect(aliceStream.text()).toEndWith(': closed 4403 disconnected: account locked\n\n');
    await t.notify(channel, 'for bob');
    expect((await bobStream.next('message')).data).toMatchObject({ payload: 'for bob' });
    expect(await metric(t.url, 'pgws_subject_cutoffs_total', { reason: 'disconnect' })).toBe(1);
    expect(await metric(t.url, 'pgws_closes_total', { reason: 'disconnected', transport: 'sse' })).toBe(1);
  });

  test('pgws.revoke ends a stream whose token it covers (4403 revoked), and such a token opens no stream: 401 token_invalid', async () => {
    const channel = uniqueChannel('revoked');
    await using t = await startBridge(authToml(), secretEnv);
    const alice = ops.subject('alice');
    const old = await token(alice, nowSeconds() - 60);
    const stream = await streamEvents(t.url, `channel=${channel}`, bearer(old));
    await stream.next('subscribed');
    await ops.sql`SELECT pgws.revoke(${alice})`;
    await stream.ended;
    expect(stream.text()).toEndWith(': closed 4403 revoked: token revoked\n\n');
    const refused = (await openEvents(t.url, `channel=${channel}`, bearer(old))) as Refused;
    expect(refused).toMatchObject({ status: 401, body: { code: 'token_invalid' } });
  });

  test('max_connections_per_subject counts streams beside sockets: one more is 429 subject_limit, and a slot comes back when a stream ends', async () => {
    const channel = uniqueChannel('limit');
    await using t = await startBridge(authToml('max_connections_per_subject = 2'), secretEnv);
    const alice = ops.subject('alice');
    const aliceToken = await token(alice);
    using socket = await connectMux(t.url, { bearer: aliceToken });
    const first = await streamEvents(t.url, `channel=${channel}`, bearer(aliceToken));
    await first.next('subscribed');
    const over = (await openEvents(t.url, `channel=${channel}`, bearer(aliceToken))) as Refused;
    expect(over).toMatchObject({ status: 429, body: { code: 'subject_limit' } });
    // A socket over the limit is told the same way it always is: 4429.
    using third = await openMux(t.url, { bearer: aliceToken });
    expect((await third.closed).code).toBe(4429);
    first.close();
    await waitFor(
      async () => (await metric(t.url, 'pgws_connections', { transport: 'sse' })) === 0,
      5000,
      'the stream to end',
    );
    using again = (await openEvents(t.url, `channel=${channel}`, bearer(aliceToken))) as EventsClient;
    expect(again.status).toBe(200);
    expect(socket.socket.readyState).toBe(WebSocket.OPEN);
  });

  test('the client over streams hears cut_off from the stream’s last comment, and never sends that token again', async () => {
    const channel = uniqueChannel('client');
    await using t = await startBridge(authToml(), secretEnv);
    const alice = ops.subject('alice');
    const tokens = [await token(alice), await token(alice, nowSeconds() + 1)];
    const given: string[] = [];
    const errors: string[] = [];
    const client = createClient({
      onError: (error) => errors.push(error.code),
      url: `ws://${t.url.host}/`,
      transport: 'sse',
      reconnect: { minMs: 20, maxMs: 200 },
      token: () => {
        const next = tokens[Math.min(given.length, 1)] ?? '';
        given.push(next);
        return next;
      },
    });
    const seen = recorder();
    client.subscribe(channel, seen.handlers);
    await seen.answered(1);
    await ops.sql`SELECT pgws.disconnect(${alice})`;
    await seen.answered(2);
    expect(errors).toContain('cut_off');
    expect(given[1]).not.toBe(given[0]);
    await t.notify(channel, 'after the cut');
    await seen.until(1);
    await client.close();
  });
});
