/**
 * The pure parts of streams, without a server: the cursor (`src/base/cursor.ts`) and how a stream writes each
 * pgws.v1 server frame (`src/http/framing.ts`).
 */
import { describe, expect, test } from 'bun:test';
import { decodeCursor, encodeCursor } from '../src/base/cursor.ts';
import { StreamWriter } from '../src/http/framing.ts';
import {
  encodeGap,
  encodeMessage,
  encodePong,
  encodeReady,
  encodeSubscribed,
  encodeUnnumbered,
} from '../src/protocol/replies.ts';

const positions = (...entries: [string, string, number][]) =>
  new Map(entries.map(([channel, epoch, seq]) => [channel, { epoch, seq }]));

describe('the cursor', () => {
  test.each([
    ['one channel', positions(['orders', 'k3j2.1', 42])],
    ['channels with any characters', positions(['chat room', 'e.1', 0], ['ünï/"\\', 'e.2', 9_007_199_254_740_991])],
    ['durable-style epochs of any text', positions(['a', '2026-12-07 epoch from the database', 7])],
    ['no channel', positions()],
  ])('round-trips %s', (_, held) => {
    const cursor = encodeCursor(held);
    expect(decodeCursor(cursor)).toEqual(held);
    // Safe in a query string as it is, and in a header: nothing URLSearchParams would decode, no line break.
    expect(cursor).toMatch(/^[A-Za-z0-9_.~-]+$/);
    expect(new URLSearchParams(`since=${cursor}`).get('since')).toBe(cursor);
  });

  test.each([
    ['empty text', ''],
    ['another version', `2${encodeCursor(positions(['a', 'e', 1])).slice(1)}`],
    ['base64 that is not JSON', '1.bm9wZQ.1'],
    ['seqs that do not match the channels', '1.W1siYSIsImUiXV0.1~2'],
    ['a negative seq', '1.W1siYSIsImUiXV0.-1'],
    ['a seq that is not an integer', '1.W1siYSIsImUiXV0.1.5'],
    ['a seq past 2^53', '1.W1siYSIsImUiXV0.9007199254740993'],
    [
      'a channel twice',
      encodeCursor(positions(['a', 'e', 1])).replace('W1siYSIsImUiXV0', 'W1siYSIsImUiXSxbImEiLCJlIl1d') + '~2',
    ],
    ['characters outside base64url', '1.W1si+YSIsImUiXV0.1'],
  ])('reads %s as no cursor', (_, text) => {
    expect(decodeCursor(text)).toBeUndefined();
  });
});

describe('a stream writer', () => {
  const channel = 'a "quoted" \\ name';
  const channelJson = JSON.stringify(channel);

  test('writes subscribed, message and gap as Server-Sent Events whose id is the cursor after that event', () => {
    const writer = new StreamWriter('sse', [channel], undefined);
    const subscribed = writer.write(encodeSubscribed({ id: 0, channel, epoch: 'e1', seq: 4 }));
    expect(subscribed).toBe(
      `event: subscribed\nid: ${encodeCursor(positions([channel, 'e1', 4]))}\ndata: {"channel":${channelJson},"epoch":"e1","seq":4}\n\n`,
    );
    const message = writer.write(encodeMessage(channelJson, 5, '{"n":1}'));
    expect(message).toBe(
      `event: message\nid: ${encodeCursor(positions([channel, 'e1', 5]))}\ndata: {"channel":${channelJson},"seq":5,"payload":{"n":1}}\n\n`,
    );
    const gap = writer.write(encodeGap(channel, 'e2', 0));
    expect(gap).toBe(
      `event: gap\nid: ${encodeCursor(positions([channel, 'e2', 0]))}\ndata: {"channel":${channelJson},"epoch":"e2","seq":0}\n\n`,
    );
  });

  test('a message without a seq (a plain NOTIFY on a durable channel) leaves the cursor where it was', () => {
    const writer = new StreamWriter('sse', [channel], undefined);
    writer.write(encodeSubscribed({ id: 0, channel, epoch: 'e1', seq: 4 }));
    writer.write(encodeMessage(channelJson, 5, '{"n":1}'));
    const plain = writer.write(encodeUnnumbered(channelJson, '"live only"'));
    expect(plain).toBe(
      `event: message\nid: ${encodeCursor(positions([channel, 'e1', 5]))}\ndata: {"channel":${channelJson},"payload":"live only"}\n\n`,
    );
    expect(writer.cursor).toBe(encodeCursor(positions([channel, 'e1', 5])));
  });

  test('writes NDJSON lines that are pgws.v1 frames, message with the epoch of its channel added', () => {
    const writer = new StreamWriter('ndjson', [channel], undefined);
    expect(
      JSON.parse(writer.write(encodeSubscribed({ id: 0, channel, epoch: 'e1', seq: 0, recovered: false }))),
    ).toEqual({
      type: 'subscribed',
      channel,
      epoch: 'e1',
      seq: 0,
      recovered: false,
    });
    const line = writer.write(encodeMessage(channelJson, 1, '"text"'));
    expect(line.endsWith('\n')).toBe(true);
    expect(JSON.parse(line)).toEqual({ type: 'message', channel, seq: 1, epoch: 'e1', payload: 'text' });
  });

  test('keeps each channel of the stream in its cursor: a channel resumed from the request keeps its position until its subscribed', () => {
    const writer = new StreamWriter('sse', ['a', 'b'], positions(['b', 'eb', 3]));
    expect(decodeCursor(writer.cursor)).toEqual(positions(['b', 'eb', 3]));
    writer.write(encodeSubscribed({ id: 0, channel: 'a', epoch: 'ea', seq: 0 }));
    writer.write(encodeMessage('"a"', 1, '1'));
    expect(decodeCursor(writer.cursor)).toEqual(positions(['a', 'ea', 1], ['b', 'eb', 3]));
  });

  test('writes nothing for frames a stream does not carry, or for a channel it does not hold', () => {
    const writer = new StreamWriter('sse', ['a'], undefined);
    expect(writer.write(encodeReady(null, null))).toBe('');
    expect(writer.write(encodePong(1))).toBe('');
    expect(writer.write(encodeMessage('"b"', 1, '1'))).toBe('');
  });
});
