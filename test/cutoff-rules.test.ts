/**
 * The rules of cutting a subject off, without a socket or a database (docs/PROTOCOL.md, "Cutting a subject
 * off, and per-subject limits"): which tokens a revocation refuses, when the revocations are current, and
 * how the slots of `max_connections_per_subject` are counted.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { createRevocations } from '../src/auth/revocations.ts';
import { createSubjectCounter } from '../src/auth/slots.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

const BEFORE = Date.parse('2026-01-01T12:00:00.500Z');
const seconds = (iso: string) => Date.parse(iso) / 1000;

describe('a revocation', () => {
  const revocations = createRevocations(true);
  revocations.apply({ kind: 'revocations', rows: [['alice', BEFORE]] });

  test.each([
    ['issued (iat) before `before`', seconds('2026-01-01T11:59:59Z'), 'issued_before'],
    ['issued in the second of `before` (iat counts whole seconds)', seconds('2026-01-01T12:00:00Z'), 'issued_before'],
    ['without iat', undefined, 'no_iat'],
  ] as const)('refuses a token of the subject %s', (_, issuedAt, reason) => {
    expect(revocations.refuses({ subject: 'alice', issuedAt })).toBe(reason);
  });

  test('lets through a token of the subject issued after `before`, and any token of another subject', () => {
    expect(revocations.refuses({ subject: 'alice', issuedAt: seconds('2026-01-01T12:00:01Z') })).toBeUndefined();
    expect(revocations.refuses({ subject: 'bob', issuedAt: undefined })).toBeUndefined();
  });

  test('is set, moved and lifted one subject at a time, and replaced in full by a full read', () => {
    const one = createRevocations(true);
    one.apply({ kind: 'revocation', subject: 'bob', before: BEFORE });
    expect(one.refuses({ subject: 'bob', issuedAt: undefined })).toBe('no_iat');
    one.apply({ kind: 'revocation', subject: 'bob', before: undefined });
    expect(one.refuses({ subject: 'bob', issuedAt: undefined })).toBeUndefined();
    one.apply({ kind: 'revocation', subject: 'carol', before: BEFORE });
    one.apply({ kind: 'revocations', rows: [['dave', Number.POSITIVE_INFINITY]] });
    expect(one.rows()).toEqual([['dave', Number.POSITIVE_INFINITY]]);
    expect(one.refuses({ subject: 'dave', issuedAt: seconds('2100-01-01T00:00:00Z') })).toBe('issued_before');
  });
});

describe('the revocations are current', () => {
  test('only once read in full; not after a loss until read again; a disconnect changes nothing', async () => {
    const revocations = createRevocations(true);
    expect(revocations.current).toBe(false);
    const waiting = revocations.whenCurrent(Number.POSITIVE_INFINITY);
    revocations.apply({ kind: 'revocation', subject: 'alice', before: BEFORE });
    revocations.apply({ kind: 'disconnect', subject: 'alice', reason: undefined });
    expect(revocations.current).toBe(false);
    revocations.apply({ kind: 'revocations', rows: [] });
    expect(await waiting).toBe(true);
    revocations.stale();
    expect(revocations.current).toBe(false);
    expect(await revocations.whenCurrent(1)).toBe(false);
    const again = revocations.whenCurrent(Number.POSITIVE_INFINITY);
    revocations.apply({ kind: 'revocations', rows: [] });
    expect(await again).toBe(true);
  });

  test('always without [auth]: there is no token to check', async () => {
    const revocations = createRevocations(false);
    revocations.stale();
    expect(revocations.current).toBe(true);
    expect(await revocations.whenCurrent(0)).toBe(true);
  });
});

describe('max_connections_per_subject', () => {
  test('gives a subject its limit of slots and no more, and one again when one is given back', async () => {
    const counter = createSubjectCounter(2);
    expect([await counter.take('alice'), counter.takeNow('alice'), counter.takeNow('alice')]).toEqual([
      true,
      true,
      false,
    ]);
    expect(counter.takeNow('bob')).toBe(true);
    counter.give('alice');
    expect([counter.held('alice'), counter.takeNow('alice')]).toEqual([1, true]);
  });

  test('0 is no limit: every take succeeds and nothing is held', () => {
    const counter = createSubjectCounter(0);
    for (let i = 0; i < 100; i++) expect(counter.takeNow('alice')).toBe(true);
    expect([counter.limited, counter.held('alice')]).toEqual([false, 0]);
  });
});
