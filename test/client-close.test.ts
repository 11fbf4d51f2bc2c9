/**
 * The typed client's `close()` against a real bridge: whatever a publish is waiting for (a socket, its
 * channel's subscribe, or the server's answer), close settles it, so no caller's promise is left hanging.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { createClient, PgwsError } from '../src/client/client.ts';
import { startBridge, uniqueChannel, waitFor, within } from './harness.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

const codeOf = (promise: Promise<void>) => promise.then(() => 'published').catch((error: PgwsError) => error.code);

describe('the client: close', () => {
  test('rejects a publish still waiting for the socket, and refuses subscribe and publish afterwards', async () => {
    const channel = uniqueChannel();
    await using t = await startBridge(`[channels."${channel}"]\npublish = true\n`);
    const client = createClient({ url: `ws://${t.url.host}/` });
    const waiting = codeOf(client.publish(channel, 'never sent'));
    await within(client.close(), 5000, 'close to resolve');
    expect(await waiting).toBe('closed');
    expect(client.state).toBe('closed');
    expect(() => client.subscribe(channel, { onMessage() {} })).toThrow(PgwsError);
    expect(await codeOf(client.publish(channel, 'late'))).toBe('closed');
  });

  test('rejects a publish held for its unanswered subscribe and one awaiting its answer', async () => {
    const [held, sent] = [uniqueChannel(), uniqueChannel()];
    await using t = await startBridge(`[channels."${held}"]\npublish = true\n[channels."${sent}"]\npublish = true\n`);
    const client = createClient({ url: `ws://${t.url.host}/` });
    await waitFor(() => client.state === 'open', 10_000, 'the client to open');
    // Both in one tick, so neither the `subscribed` nor the `published` answer can arrive first.
    client.subscribe(held, { onMessage() {} });
    const outcomes = [codeOf(client.publish(held, 'held')), codeOf(client.publish(sent, 'in flight'))];
    await within(client.close(), 5000, 'close to resolve');
    expect(await Promise.all(outcomes)).toEqual(['closed', 'closed']);
    expect(client.state).toBe('closed');
  });
});
