import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { createEpochSource, createStream, processEpochs, type Stream } from '../src/protocol/history.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

/** A stream with predictable epochs (`e1`, `e2`, …) and `count` messages appended as `{"n":seq}`. */
function streamWith(capacity: number, count: number, maxBytes?: number): Stream {
  let next = 0;
  const stream = createStream({ capacity, maxBytes, epochs: () => `e${++next}` });
  for (let i = 1; i <= count; i++) stream.append(`{"n":${i}}`, { n: i });
  return stream;
}

/** The seqs a resume replays, or false when it does not recover. */
function replayed(stream: Stream, epoch: string, seq: number): number[] | false {
  const result = stream.resume({ epoch, seq });
  return result.recovered ? result.entries.map((entry) => entry.seq) : false;
}

describe('stream positions (no database)', () => {
  test('a new stream starts at head 0 in a fresh epoch', () => {
    const stream = streamWith(4, 0);
    expect([stream.epoch, stream.head, stream.size, stream.bytes]).toEqual(['e1', 0, 0, 0]);
  });

  test('seqs are consecutive from 1 across thousands of appends, with or without history', () => {
    for (const capacity of [0, 1, 7, 100]) {
      const stream = streamWith(capacity, 0);
      for (let seq = 1; seq <= 5000; seq++) expect(stream.append('1', 1)).toBe(seq);
      expect([stream.head, stream.size]).toEqual([5000, capacity]);
    }
  });

  test('the ring keeps the last capacity messages, oldest first, with their parsed values', () => {
    const result = streamWith(3, 10).resume({ epoch: 'e1', seq: 7 });
    expect(result).toEqual({
      recovered: true,
      entries: [8, 9, 10].map((seq) => ({ seq, payloadJson: `{"n":${seq}}`, value: { n: seq } })),
    });
  });

  test('bytes counts the held payload texts in UTF-16 code units', () => {
    const stream = streamWith(2, 0);
    stream.append('"é"', 'é');
    expect(stream.bytes).toBe(3);
    stream.append('"🚀"', '🚀');
    expect(stream.bytes).toBe(7);
    stream.append('1', 1);
    expect([stream.size, stream.bytes]).toEqual([2, 5]);
  });

  test('maxBytes evicts the oldest until the held payloads fit', () => {
    const stream = createStream({ capacity: 100, maxBytes: 10, epochs: () => 'e' });
    for (const text of ['"aaa"', '"bbb"', '"ccc"']) stream.append(text, text);
    expect([stream.size, stream.bytes]).toEqual([2, 10]);
    expect(replayed(stream, 'e', 1)).toEqual([2, 3]);
    expect(replayed(stream, 'e', 0)).toBe(false);
  });

  test('a payload bigger than maxBytes on its own is not held, so a resume before it does not recover', () => {
    const stream = createStream({ capacity: 100, maxBytes: 10, epochs: () => 'e' });
    stream.append('"a"', 'a');
    stream.append(`"${'x'.repeat(20)}"`, 'x');
    expect([stream.head, stream.size, stream.bytes]).toEqual([2, 0, 0]);
    expect(replayed(stream, 'e', 1)).toBe(false);
    expect(replayed(stream, 'e', 2)).toEqual([]);
  });

  test.each([-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])('refuses a capacity of %p', (capacity) => {
    expect(() => createStream({ capacity })).toThrow(RangeError);
  });
});

describe('resume (no database)', () => {
  // Capacity 5 after 12 messages: seqs 8..12 held, so every message after 7 is still there.
  test.each<[string, string, number, number[] | false]>([
    ['at head: recovered, nothing to replay', 'e1', 12, []],
    ['one behind head', 'e1', 11, [12]],
    ['exactly at the oldest boundary (oldest held minus one)', 'e1', 7, [8, 9, 10, 11, 12]],
    ['one older than the boundary: never a partial replay', 'e1', 6, false],
    ['far too old', 'e1', 0, false],
    ['ahead of head', 'e1', 13, false],
    ['far ahead of head', 'e1', Number.MAX_SAFE_INTEGER, false],
    ['another epoch, same seq', 'e0', 12, false],
    ['an empty epoch', '', 12, false],
    ['a fractional seq, which the parser refuses anyway', 'e1', 7.5, false],
    ['a negative seq', 'e1', -1, false],
  ])('since %s', (_, epoch, seq, expected) => {
    expect(replayed(streamWith(5, 12), epoch, seq)).toEqual(expected);
  });

  test('with history off, only a resume at head recovers', () => {
    const stream = streamWith(0, 3);
    expect(replayed(stream, 'e1', 3)).toEqual([]);
    expect(replayed(stream, 'e1', 2)).toBe(false);
  });

  test('a new epoch with nothing sent yet recovers a resume at 0 and nothing else', () => {
    const stream = streamWith(5, 0);
    expect(replayed(stream, 'e1', 0)).toEqual([]);
    expect(replayed(stream, 'e1', 1)).toBe(false);
  });

  test('a replay is a snapshot: appends after it do not change the entries returned', () => {
    const stream = streamWith(5, 3);
    const result = stream.resume({ epoch: 'e1', seq: 1 });
    stream.append('4', 4);
    expect(result.recovered && result.entries.map((entry) => entry.seq)).toEqual([2, 3]);
  });

  test('recovers every position of a window that has wrapped the ring many times', () => {
    const stream = streamWith(7, 1000);
    for (let since = 993; since <= 1000; since++) {
      expect(replayed(stream, 'e1', since)).toEqual(Array.from({ length: 1000 - since }, (_, i) => since + 1 + i));
    }
    expect(replayed(stream, 'e1', 992)).toBe(false);
  });
});

describe('reset (no database)', () => {
  test('starts a new epoch at head 0 with the history dropped, and returns the epoch', () => {
    const stream = streamWith(5, 4);
    expect(stream.reset()).toBe('e2');
    expect([stream.epoch, stream.head, stream.size, stream.bytes]).toEqual(['e2', 0, 0, 0]);
    expect(stream.append('1', 1)).toBe(1);
  });

  test('a position of the old epoch no longer recovers, even at a seq the new epoch has reached', () => {
    const stream = streamWith(5, 4);
    stream.reset();
    for (let i = 0; i < 4; i++) stream.append('1', 1);
    expect(replayed(stream, 'e1', 4)).toBe(false);
    expect(replayed(stream, 'e2', 4)).toEqual([]);
  });

  test('epochs from one source are unique across many streams reset together', () => {
    const epochs = createEpochSource('p');
    const streams = Array.from({ length: 50 }, () => createStream({ capacity: 1, epochs }));
    const seen = new Set(streams.map((stream) => stream.epoch));
    for (let round = 0; round < 20; round++) for (const stream of streams) seen.add(stream.reset());
    expect(seen.size).toBe(50 * 21);
  });

  test('the process epoch source is short, and its prefix differs between sources', () => {
    const first = processEpochs();
    const second = processEpochs();
    expect(first).not.toBe(second);
    expect(first.length).toBeLessThanOrEqual(16);
    expect(first).toMatch(/^[0-9a-z]+\.[0-9a-z]+$/);
    const prefix = (epoch: string) => epoch.split('.')[0];
    expect(prefix(first)).toBe(prefix(second));
    expect(prefix(createEpochSource()())).not.toBe(prefix(first));
  });
});
