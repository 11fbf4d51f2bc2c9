/**
 * References and their ordered resolution, without a database: fetches are promises the test settles,
 * in whatever order it likes, and the resolver must still deliver each channel in arrival order.
 */
import { describe, expect, test } from 'bun:test';
import { type Fetched, isReference, MARKER, MARKER_CODE, referenceId } from '../src/channels/reference.ts';
import { createResolver } from '../src/channels/resolver.ts';
import { within } from './harness.ts';

const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
const ref = (n: number) => `${MARKER}${id(n)}`;

function setup(timeoutMs = 5000) {
  const fetches = new Map<string, PromiseWithResolvers<Fetched>>();
  const delivered: string[] = [];
  const dropped: string[] = [];
  const failures: unknown[] = [];
  const resolver = createResolver({
    fetch(fetchId, channel) {
      const pending = Promise.withResolvers<Fetched>();
      fetches.set(`${channel}/${fetchId}`, pending);
      return pending.promise;
    },
    deliver: (channel, payload) => void delivered.push(`${channel}:${payload}`),
    drop: (channel, reason, detail) => void dropped.push(`${channel}:${reason}:${detail.id ?? ''}`),
    failed: (error) => void failures.push(error),
    timeoutMs,
  });
  /** Answers the fetch of reference n on `channel`, then lets its callbacks run. */
  const answer = async (channel: string, n: number, fetched: Fetched) => {
    fetches.get(`${channel}/${id(n)}`)?.resolve(fetched);
    await Bun.sleep(0);
  };
  return { resolver, delivered, dropped, failures, answer, fetches };
}

describe('references (no database)', () => {
  test('the marker starts with a control character; a reference is the marker and a UUID', () => {
    expect(MARKER.charCodeAt(0)).toBe(MARKER_CODE);
    expect(MARKER_CODE).toBeLessThan(0x20);
    expect(referenceId(ref(7))).toBe(id(7));
    expect(isReference(ref(7))).toBe(true);
  });

  test.each([
    ['nothing after the marker', MARKER],
    ['an uppercase UUID', `${MARKER}ABCDEF00-0000-4000-8000-000000000001`],
    ['a UUID with more after it', `${ref(1)} `],
    ['text', `${MARKER}hello`],
  ])('a reference with %s is malformed', (_, payload) => {
    expect(isReference(payload)).toBe(true);
    expect(referenceId(payload)).toBeUndefined();
  });

  test.each([
    ['JSON', '{"a":1}'],
    ['the control character alone', '\u001E'],
    ['the marker without its control character', 'pgws:00000000-0000-4000-8000-000000000001'],
    ['the marker later in the text', `x${ref(1)}`],
  ])('%s is not a reference', (_, payload) => {
    expect(isReference(payload)).toBe(false);
  });
});

describe('resolving references in order (no database)', () => {
  test('a channel with nothing outstanding is delivered at once, synchronously', () => {
    const { resolver, delivered } = setup();
    resolver.accept('a', 'one');
    expect(delivered).toEqual(['a:one']);
    expect(resolver.busy).toBe(0);
  });

  test('notifications after a reference wait for it, and fetches answered out of order still deliver in order', async () => {
    const { resolver, delivered, answer } = setup();
    resolver.accept('a', ref(1));
    resolver.accept('a', 'small after 1');
    resolver.accept('a', ref(2));
    resolver.accept('a', 'small after 2');
    resolver.accept('b', 'other channel');
    expect(delivered).toEqual(['b:other channel']);
    expect(resolver.busy).toBe(1);
    await answer('a', 2, { ok: true, payload: 'large 2' });
    expect(delivered).toEqual(['b:other channel']);
    await answer('a', 1, { ok: true, payload: 'large 1' });
    expect(delivered).toEqual(['b:other channel', 'a:large 1', 'a:small after 1', 'a:large 2', 'a:small after 2']);
    expect(resolver.busy).toBe(0);
  });

  test('a reference that cannot be resolved is dropped in its place, and the queue goes on', async () => {
    const { resolver, delivered, dropped, answer } = setup();
    resolver.accept('a', ref(1));
    resolver.accept('a', 'next');
    await answer('a', 1, { ok: false, reason: 'reference_forged' });
    expect(dropped).toEqual([`a:reference_forged:${id(1)}`]);
    expect(delivered).toEqual(['a:next']);
  });

  test('a malformed reference is dropped without a fetch', () => {
    const { resolver, dropped, fetches } = setup();
    resolver.accept('a', `${MARKER}nope`);
    expect(dropped).toEqual(['a:reference_malformed:']);
    expect(fetches.size).toBe(0);
    expect(resolver.busy).toBe(0);
  });

  test('a fetch that never answers is given up after the timeout, so the channel does not stall', async () => {
    const delivered: string[] = [];
    const dropped = Promise.withResolvers<string>();
    const resolver = createResolver({
      fetch: () => new Promise<Fetched>(() => {}),
      deliver: (_, payload) => void delivered.push(payload),
      drop: (_, reason) => dropped.resolve(reason),
      failed: () => {},
      timeoutMs: 20,
    });
    resolver.accept('a', ref(1));
    resolver.accept('a', 'next');
    expect(delivered).toEqual([]);
    expect(await within(dropped.promise, 2000, 'the fetch to be given up')).toBe('reference_failed');
    expect(delivered).toEqual(['next']);
  });

  test('reset forgets the queues; a fetch answered afterwards delivers nothing', async () => {
    const { resolver, delivered, answer } = setup();
    resolver.accept('a', ref(1));
    resolver.accept('a', 'queued');
    resolver.reset();
    expect(resolver.busy).toBe(0);
    resolver.accept('a', 'after the reset');
    await answer('a', 1, { ok: true, payload: 'late' });
    expect(delivered).toEqual(['a:after the reset']);
  });

  test('a delivery that throws is reported and the rest of the queue is still delivered', async () => {
    const seen: string[] = [];
    const failures: unknown[] = [];
    const resolver = createResolver({
      fetch: () => Promise.resolve({ ok: true, payload: 'large' }),
      deliver(_, payload) {
        seen.push(payload);
        if (payload === 'large') throw new Error('boom');
      },
      drop: () => {},
      failed: (error) => void failures.push(error),
      timeoutMs: 1000,
    });
    resolver.accept('a', ref(1));
    resolver.accept('a', 'after');
    await Bun.sleep(0);
    expect(seen).toEqual(['large', 'after']);
    expect(failures.length).toBe(1);
    expect(resolver.busy).toBe(0);
  });

  test('a channel that always has a fetch outstanding still delivers everything in order', async () => {
    const { resolver, delivered, answer } = setup();
    const expected: string[] = [];
    for (let n = 0; n < 3000; n++) {
      resolver.accept('a', ref(n));
      resolver.accept('a', `small ${n}`);
      expected.push(`a:large ${n}`, `a:small ${n}`);
      if (n > 0) await answer('a', n - 1, { ok: true, payload: `large ${n - 1}` });
    }
    await answer('a', 2999, { ok: true, payload: 'large 2999' });
    expect(delivered).toEqual(expected);
    expect(resolver.busy).toBe(0);
  });
});
