/**
 * The typed client (src/client/client.ts) when the server cuts its subject off (docs/PROTOCOL.md: 4403, "do not
 * reconnect with the same token; get a new one") or refuses one more connection of it (4429, "close another
 * connection first"): against a real bridge for what the client does, and the pure rules of
 * src/client/closes.ts for how long it waits.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { createClient, type PgwsError } from '../src/client/client.ts';
import { afterClose, reconnectDelay } from '../src/client/closes.ts';
import { startBridge, uniqueChannel, waitFor } from './harness.ts';
import { connectMux } from './mux.ts';
import { operator } from './pgws.ts';
import { authToml, secretEnv, subjectToken } from './tokens.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

const ops = operator(`cutc_${process.pid}_`);
const subject = () => ops.subject('alice');
/** A distinct token of `sub` each call (`jti` differs), each issued now. */
let minted = 0;
const token = (sub: string) => subjectToken(sub, undefined, { jti: String(++minted) });

/** A client of the bridge at `base` that records the errors it reports and the tokens it was given. */
function client(base: URL, tokens: string | (() => Promise<string>), maxMs = 200) {
  const errors: PgwsError[] = [];
  const pgws = createClient({
    url: `ws://${base.host}/`,
    token: tokens,
    reconnect: { minMs: 20, maxMs },
    onError: (error) => void errors.push(error),
  });
  return { pgws, errors, codes: () => errors.map((error) => error.code) };
}

describe('the client after 4403', () => {
  test('asks its token function for a new token and reconnects with it, telling onError', async () => {
    await using t = await startBridge(authToml(), secretEnv);
    const alice = subject();
    const given: string[] = [];
    const { pgws, codes } = client(t.url, async () => {
      given.push(await token(alice));
      return given.at(-1) ?? '';
    });
    await waitFor(() => pgws.state === 'open', 10_000, 'the client to open');
    await ops.sql`SELECT pgws.disconnect(${alice}, 'sign in again')`;
    await waitFor(() => given.length === 2 && pgws.state === 'open', 10_000, 'the reconnect with a new token');
    expect(codes()).toEqual(['cut_off']);
    expect(given[1]).not.toBe(given[0]);
    await pgws.close();
  });

  test('stops, telling onError, when its token function gives the same token back', async () => {
    await using t = await startBridge(authToml(), secretEnv);
    const alice = subject();
    const same = await token(alice);
    const { pgws, codes } = client(t.url, async () => same);
    await waitFor(() => pgws.state === 'open', 10_000, 'the client to open');
    await ops.sql`SELECT pgws.disconnect(${alice})`;
    await waitFor(() => pgws.state === 'closed', 10_000, 'the client to stop');
    expect(codes()).toEqual(['cut_off', 'cut_off']);
    await expect(pgws.publish(uniqueChannel(), 'never sent')).rejects.toMatchObject({ code: 'closed' });
  });

  test('stops at once, telling onError, with a fixed token', async () => {
    await using t = await startBridge(authToml(), secretEnv);
    const alice = subject();
    const { pgws, codes } = client(t.url, await token(alice));
    await waitFor(() => pgws.state === 'open', 10_000, 'the client to open');
    await ops.sql`SELECT pgws.disconnect(${alice})`;
    await waitFor(() => pgws.state === 'closed', 10_000, 'the client to stop');
    expect(codes()).toEqual(['cut_off']);
    await pgws.close();
  });
});

describe('the client after 4429', () => {
  test('tells onError and comes back once the subject has a slot again', async () => {
    await using t = await startBridge(authToml('max_connections_per_subject = 1'), secretEnv);
    const alice = subject();
    const holder = await connectMux(t.url, { bearer: await token(alice) });
    const { pgws, codes } = client(t.url, () => token(alice));
    await waitFor(() => codes().includes('subject_limit'), 10_000, 'the 4429');
    holder.socket.close();
    await waitFor(() => pgws.state === 'open', 10_000, 'the client to get the freed slot');
    await pgws.close();
  });

  test('waits at least half of reconnect.maxMs, however few failures came before', () => {
    expect(afterClose(4429, 'too many').comeback).toBe('later');
    for (const random of [() => 0, () => 0.5, () => 0.999]) {
      const delay = reconnectDelay('later', 0, 250, 10_000, random);
      expect(delay).toBeGreaterThanOrEqual(5000);
      expect(delay).toBeLessThanOrEqual(10_000);
    }
    expect(reconnectDelay('retry', 0, 250, 10_000, () => 0)).toBe(250);
  });

  test.each([
    [4401, 'unauthorized', 'retry'],
    [4403, 'cut_off', 'new_token'],
    [4429, 'subject_limit', 'later'],
    [1001, undefined, 'retry'],
  ] as const)('a close with %i tells onError %p and comes back with %p', (code, error, comeback) => {
    const after = afterClose(code, 'why');
    expect([after.error?.code, after.comeback]).toEqual([error, comeback]);
  });
});
