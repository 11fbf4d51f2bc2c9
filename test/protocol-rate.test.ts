import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { createBucket } from '../src/protocol/rate.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

describe('publish rate bucket (no database)', () => {
  /** A clock the test moves by hand, in milliseconds. */
  function fakeClock() {
    let time = 1000;
    return { now: () => time, advance: (ms: number) => (time += ms) };
  }

  test('allows a burst of rate, then refuses until time passes', () => {
    const clock = fakeClock();
    const bucket = createBucket(20, clock.now);
    const taken = Array.from({ length: 25 }, () => bucket.take());
    expect(taken.filter(Boolean).length).toBe(20);
    expect(taken.slice(20)).toEqual([false, false, false, false, false]);
  });

  test('refills at rate per second: one token per 1/rate seconds', () => {
    const clock = fakeClock();
    const bucket = createBucket(20, clock.now);
    while (bucket.take()) {}
    clock.advance(49);
    expect(bucket.take()).toBe(false);
    clock.advance(1);
    expect(bucket.take()).toBe(true);
    expect(bucket.take()).toBe(false);
  });

  test('refills no further than the burst, however long it was idle', () => {
    const clock = fakeClock();
    const bucket = createBucket(5, clock.now);
    while (bucket.take()) {}
    clock.advance(3_600_000);
    expect(Array.from({ length: 8 }, () => bucket.take()).filter(Boolean).length).toBe(5);
  });

  test('a steady stream at the rate is never refused', () => {
    const clock = fakeClock();
    const bucket = createBucket(10, clock.now);
    for (let i = 0; i < 1000; i++) {
      clock.advance(100);
      expect(bucket.take()).toBe(true);
    }
  });

  test.each([3, 7, 29, 0.5, 1.1])('a client keeping exactly to a rate of %p per second is never refused', (rate) => {
    const clock = fakeClock();
    const bucket = createBucket(rate, clock.now);
    while (bucket.take()) {}
    for (let i = 0; i < 5000; i++) {
      clock.advance(1000 / rate);
      expect(bucket.take()).toBe(true);
    }
  });

  test('a rate below one per second still allows one publish, then one per 1/rate seconds', () => {
    const clock = fakeClock();
    const bucket = createBucket(0.5, clock.now);
    expect([bucket.take(), bucket.take()]).toEqual([true, false]);
    clock.advance(1999);
    expect(bucket.take()).toBe(false);
    clock.advance(1);
    expect(bucket.take()).toBe(true);
  });

  test('a clock that steps back neither adds nor drains tokens', () => {
    const clock = fakeClock();
    const bucket = createBucket(2, clock.now);
    expect(bucket.take()).toBe(true);
    clock.advance(-10_000);
    expect(bucket.take()).toBe(true);
    expect(bucket.take()).toBe(false);
  });

  test('an infinite rate never refuses', () => {
    const bucket = createBucket(Number.POSITIVE_INFINITY);
    for (let i = 0; i < 10_000; i++) expect(bucket.take()).toBe(true);
  });

  test.each([0, -1, Number.NaN])('refuses a rate of %p as a configuration mistake', (rate) => {
    expect(() => createBucket(rate)).toThrow(RangeError);
  });
});
