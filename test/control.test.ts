/**
 * The control channel's reader (src/db/control.ts) over a fake of the query connection whose reads the
 * test answers one by one: what each hint and each full read turns into, in which order, and what is never
 * applied (a forged hint, a disconnect already applied, a read answered after the link was lost).
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import type { Cutoff } from '../src/auth/revocations.ts';
import { createLogger } from '../src/base/log.ts';
import { createControl, parseHint } from '../src/db/control.ts';
import type { Disconnect, Loaded, Read, Unread } from '../src/db/queries.ts';
import { waitFor } from './wait.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

/** One turn of the event loop: every promise callback queued before it has run. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

const FORBIDDEN: Unread = { ok: false, reason: 'forbidden', error: new Error('permission denied') };
const FAILED: Unread = { ok: false, reason: 'failed', error: new Error('connection reset') };

/** The reads the control issues, each answered by the test. */
function fakeQueries() {
  const reads: { what: string; answer: (value: unknown) => void }[] = [];
  const read = <T>(what: string) => {
    const { promise, resolve } = Promise.withResolvers<T>();
    reads.push({ what, answer: (value) => resolve(value as T) });
    return promise;
  };
  return {
    reads,
    queries: {
      loadCutoffs: () => read<Loaded>('load'),
      readRevocation: (subject: string) => read<Read<number | undefined>>(`revocation ${subject}`),
      readDisconnect: (id: number) => read<Read<Disconnect | undefined>>(`disconnect ${id}`),
    },
    /** Answers the read issued `index`th (from 0). */
    answer(index: number, value: unknown) {
      reads[index]?.answer(value);
    },
  };
}

const loaded = (revocations: [string, number][], disconnects: Disconnect[] = []): Loaded => ({
  ok: true,
  value: { revocations, disconnects },
});

function startControl() {
  const fake = fakeQueries();
  const cutoffs: Cutoff[] = [];
  const logs: string[] = [];
  const control = createControl({
    queries: fake.queries,
    onCutoff: (cutoff) => void cutoffs.push(cutoff),
    retryMinMs: 1,
    retryMaxMs: 2,
    log: createLogger({ level: 'debug', write: (line) => logs.push(line) }),
  });
  return { ...fake, control, cutoffs, logs };
}

describe('the control channel', () => {
  test('a reload reads both tables; a hint that came after it is applied after it, whatever answers first', async () => {
    const { control, reads, answer, cutoffs } = startControl();
    control.reload();
    control.receive('{"revocation" : "alice"}');
    control.receive('{"revocation" : "bob"}');
    expect(reads.map((read) => read.what)).toEqual(['load', 'revocation alice', 'revocation bob']);
    answer(2, { ok: true, value: undefined });
    answer(1, { ok: true, value: 2000 });
    await turn();
    expect(cutoffs).toEqual([]);
    answer(0, loaded([['bob', 1000]]));
    await turn();
    expect(cutoffs).toEqual([
      { kind: 'revocations', rows: [['bob', 1000]] },
      { kind: 'revocation', subject: 'alice', before: 2000 },
      { kind: 'revocation', subject: 'bob', before: undefined },
    ]);
  });

  test('a disconnect hint reads its row and applies it once; a forged id and one applied already do nothing', async () => {
    const { control, reads, answer, cutoffs } = startControl();
    control.reload();
    answer(0, loaded([]));
    control.receive('{"disconnect" : 7}');
    control.receive('{"disconnect" : 99}');
    answer(1, { ok: true, value: { id: 7, subject: 'carol', reason: 'bye' } });
    answer(2, { ok: true, value: undefined });
    await turn();
    control.receive('{"disconnect" : 7}');
    expect(reads).toHaveLength(3);
    expect(cutoffs.slice(1)).toEqual([{ kind: 'disconnect', subject: 'carol', reason: 'bye' }]);
  });

  test('a disconnect made while the link was down is applied at the next reload; those applied or found at the first read are not', async () => {
    const { control, answer, cutoffs } = startControl();
    const old: Disconnect = { id: 1, subject: 'old', reason: undefined };
    control.reload();
    answer(0, loaded([], [old]));
    control.receive('{"disconnect" : 2}');
    answer(1, { ok: true, value: { id: 2, subject: 'heard', reason: undefined } });
    await turn();
    control.lost();
    control.reload();
    const missed: Disconnect = { id: 3, subject: 'missed', reason: 'while down' };
    answer(2, loaded([], [old, { id: 2, subject: 'heard', reason: undefined }, missed]));
    await turn();
    expect(cutoffs.filter((cutoff) => cutoff.kind === 'disconnect')).toEqual([
      { kind: 'disconnect', subject: 'heard', reason: undefined },
      { kind: 'disconnect', subject: 'missed', reason: 'while down' },
    ]);
    // The missed disconnect comes before the revocations are current again, so no new token meets it.
    expect(cutoffs.at(-1)).toEqual({ kind: 'revocations', rows: [] });
  });

  test('a reload answered after the link was lost makes nothing current', async () => {
    const { control, answer, cutoffs } = startControl();
    control.reload();
    control.lost();
    answer(0, loaded([['alice', 1]]));
    await turn();
    expect(cutoffs).toEqual([]);
  });

  test('without pgws installed, the revocations are current and empty, and a hint finds no row', async () => {
    const missing: Unread = { ok: false, reason: 'missing', error: new Error('relation does not exist') };
    const { control, answer, cutoffs } = startControl();
    control.reload();
    answer(0, missing);
    control.receive('{"revocation":"alice"}');
    answer(1, missing);
    await turn();
    expect(cutoffs).toEqual([
      { kind: 'revocations', rows: [] },
      { kind: 'revocation', subject: 'alice', before: undefined },
    ]);
  });

  test('a read refused for want of SELECT is logged once, naming the GRANT, and tried again until it succeeds', async () => {
    const { control, reads, answer, cutoffs, logs } = startControl();
    control.reload();
    answer(0, FORBIDDEN);
    await waitFor(() => reads.length === 2, 5000, 'the second read');
    answer(1, FORBIDDEN);
    await waitFor(() => reads.length === 3, 5000, 'the third read');
    answer(2, loaded([]));
    await turn();
    expect(cutoffs).toEqual([{ kind: 'revocations', rows: [] }]);
    const errors = logs.filter((line) => line.includes('GRANT SELECT ON pgws.revocations, pgws.disconnects'));
    expect(errors).toHaveLength(1);
    control.stop();
  });

  test('a hint whose row cannot be read makes it read everything again', async () => {
    const { control, reads, answer } = startControl();
    control.reload();
    answer(0, loaded([]));
    control.receive('{"revocation":"alice"}');
    answer(1, FAILED);
    await turn();
    expect(reads.map((read) => read.what)).toEqual(['load', 'revocation alice', 'load']);
  });

  test.each([
    ['not JSON', 'revoke alice'],
    ['an empty subject', '{"revocation":""}'],
    ['a subject that is not a string', '{"revocation":1}'],
    ['an id that is not an integer', '{"disconnect":"7"}'],
    ['neither key', '{"subject":"alice"}'],
    ['a JSON array', '["alice"]'],
  ])('ignores a notification that is no hint: %s', (_, payload) => {
    expect(parseHint(payload)).toBeUndefined();
    const { control, reads } = startControl();
    control.receive(payload);
    expect(reads).toEqual([]);
  });
});
