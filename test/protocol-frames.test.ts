import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { ErrorCode } from '../src/base/codes.ts';
import { readOffer, SUBPROTOCOL } from '../src/http/offer.ts';
import { type ClientFrame, parseClientFrame } from '../src/protocol/frames.ts';
import {
  encodeError,
  encodeGap,
  encodeMessage,
  encodePong,
  encodePublished,
  encodeReady,
  encodeSubscribed,
  encodeUnsubscribed,
} from '../src/protocol/replies.ts';
import { randomJson } from './fuzz/payloads.ts';
import { rngFor, SEED, scaled } from './fuzz/random.ts';
import { ERROR_CODES } from './server-frames.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

describe('client frames (no database)', () => {
  test.each<[string, ClientFrame]>([
    ['{"type":"subscribe","channel":"orders"}', { type: 'subscribe', channel: 'orders' }],
    [
      '{"type":"subscribe","id":7,"channel":"orders","since":{"epoch":"e.1","seq":0},"filter":{"a":1}}',
      { type: 'subscribe', id: 7, channel: 'orders', since: { epoch: 'e.1', seq: 0 }, filter: { a: 1 } },
    ],
    ['{"type":"unsubscribe","id":"u","channel":"orders"}', { type: 'unsubscribe', id: 'u', channel: 'orders' }],
    ['{"type":"publish","channel":"orders","payload":null}', { type: 'publish', channel: 'orders', payload: null }],
    [
      '{"type":"publish","id":-1.5,"channel":"Order Events","payload":{"id":1}}',
      { type: 'publish', id: -1.5, channel: 'Order Events', payload: { id: 1 } },
    ],
    ['{"type":"auth","token":"ey.x.y"}', { type: 'auth', token: 'ey.x.y' }],
    ['{"type":"ping"}', { type: 'ping' }],
    ['{"type":"ping","id":""}', { type: 'ping', id: '' }],
  ])('accepts %s', (text, frame) => {
    expect(parseClientFrame(text)).toEqual({ ok: true, frame });
  });

  test('ignores unknown fields, at the top and inside since, so newer clients keep working', () => {
    const parsed = parseClientFrame(
      '{"type":"subscribe","channel":"a","since":{"epoch":"e","seq":3,"x":1},"future":true,"__proto__":{"y":2}}',
    );
    expect(parsed).toEqual({ ok: true, frame: { type: 'subscribe', channel: 'a', since: { epoch: 'e', seq: 3 } } });
  });

  test('a publish keeps a falsy payload and keeps the difference between absent and null', () => {
    for (const payload of ['0', 'false', '""', 'null', '[]']) {
      const parsed = parseClientFrame(`{"type":"publish","channel":"a","payload":${payload}}`);
      expect(parsed).toEqual({ ok: true, frame: { type: 'publish', channel: 'a', payload: JSON.parse(payload) } });
    }
  });

  test.each([
    ['not JSON', '{"type":', 'the frame is not JSON'],
    ['empty text', '', 'the frame is not JSON'],
    ['an array', '[{"type":"ping"}]', 'a frame must be a JSON object, got an array'],
    ['null', 'null', 'a frame must be a JSON object, got null'],
    ['a number', '42', 'a frame must be a JSON object, got a number'],
    ['a string', '"ping"', 'a frame must be a JSON object, got a string'],
    [
      'no type',
      '{"channel":"a"}',
      'type is missing: expected one of "subscribe", "unsubscribe", "publish", "auth", "ping"',
    ],
    [
      'an unknown type',
      '{"type":"pong"}',
      'type: expected one of "subscribe", "unsubscribe", "publish", "auth", "ping", received "pong"',
    ],
    [
      'a type of the wrong case',
      '{"type":"PING"}',
      'type: expected one of "subscribe", "unsubscribe", "publish", "auth", "ping", received "PING"',
    ],
    ['a missing channel', '{"type":"subscribe"}', 'channel is missing: expected a string'],
    ['a channel of the wrong type', '{"type":"unsubscribe","channel":5}', 'channel: expected a string, received 5'],
    ['a null channel', '{"type":"publish","channel":null,"payload":1}', 'channel: expected a string, received null'],
    ['a publish without payload', '{"type":"publish","channel":"a"}', 'payload is missing: expected any JSON value'],
    [
      'since not an object',
      '{"type":"subscribe","channel":"a","since":3}',
      'since: expected an object {"epoch": string, "seq": integer >= 0}, received 3',
    ],
    [
      'since without epoch',
      '{"type":"subscribe","channel":"a","since":{"seq":1}}',
      'since.epoch is missing: expected a string',
    ],
    [
      'since without seq',
      '{"type":"subscribe","channel":"a","since":{"epoch":"e"}}',
      'since.seq is missing: expected a non-negative safe integer',
    ],
    [
      'a negative seq',
      '{"type":"subscribe","channel":"a","since":{"epoch":"e","seq":-1}}',
      'since.seq: expected a non-negative safe integer, received -1',
    ],
    [
      'a fractional seq',
      '{"type":"subscribe","channel":"a","since":{"epoch":"e","seq":1.5}}',
      'since.seq: expected a non-negative safe integer, received 1.5',
    ],
    [
      'a seq beyond 2^53',
      '{"type":"subscribe","channel":"a","since":{"epoch":"e","seq":9007199254740993}}',
      'since.seq: expected a non-negative safe integer, received 9007199254740992',
    ],
    [
      'a seq as a string',
      '{"type":"subscribe","channel":"a","since":{"epoch":"e","seq":"1"}}',
      'since.seq: expected a non-negative safe integer, received "1"',
    ],
    [
      'an epoch as a number',
      '{"type":"subscribe","channel":"a","since":{"epoch":1,"seq":1}}',
      'since.epoch: expected a string, received 1',
    ],
    ['an auth without token', '{"type":"auth"}', 'token is missing: expected a string'],
    [
      'a token of the wrong type',
      '{"type":"auth","token":{"raw":"secret"}}',
      'token: expected a string, received Object',
    ],
    ['an id that is an object', '{"type":"ping","id":{}}', 'id: expected a string or a finite number, received Object'],
    ['an id that is null', '{"type":"ping","id":null}', 'id: expected a string or a finite number, received null'],
    [
      'an id that overflows to Infinity',
      '{"type":"ping","id":1e400}',
      'id: expected a string or a finite number, received Infinity',
    ],
  ])('refuses %s as bad_request', (_, text, message) => {
    expect(parseClientFrame(text)).toMatchObject({ ok: false, id: undefined, code: 'bad_request', message });
  });

  test('lists up to three problems of one frame in one message', () => {
    const parsed = parseClientFrame('{"type":"subscribe","channel":"a","since":{"seq":-1}}');
    expect(parsed).toMatchObject({
      code: 'bad_request',
      message:
        'since.epoch is missing: expected a string; since.seq: expected a non-negative safe integer, received -1',
    });
  });

  test('quotes at most 40 characters of a wrong value', () => {
    const parsed = parseClientFrame(JSON.stringify({ type: 'x'.repeat(1000) }));
    expect(parsed.ok ? '' : parsed.message).toEndWith(`received "${'x'.repeat(39)}…`);
  });

  test('never quotes the text of a frame that is not JSON, which may hold a token', () => {
    expect(parseClientFrame('{"type":"auth","token":eyJhbGciOi.secret}')).toMatchObject({
      message: 'the frame is not JSON',
    });
  });

  test.each([
    ['a string id', '{"type":"publish","id":"p1","channel":"a"}', 'p1'],
    ['a number id', '{"type":"subscribe","id":3,"channel":5}', 3],
    ['an id beside an unknown type', '{"type":"frob","id":0}', 0],
    ['an id on an auth frame', '{"type":"auth","id":"a","token":1}', 'a'],
  ])('echoes %s on a bad_request', (_, text, id) => {
    expect(parseClientFrame(text)).toMatchObject({ ok: false, code: 'bad_request', id });
  });

  test('echoes a well-formed channel on a bad_request, so a client without ids can still tell which', () => {
    expect(parseClientFrame('{"type":"publish","channel":"orders"}')).toMatchObject({ channel: 'orders' });
    expect(parseClientFrame('{"type":"publish","channel":""}')).not.toHaveProperty('channel');
  });

  test.each([
    ['empty', '', 'channel name is empty'],
    ['64 bytes', 'x'.repeat(64), 'channel name is 64 bytes in UTF-8; PostgreSQL allows at most 63'],
    [
      '64 bytes of two-byte characters',
      'é'.repeat(32),
      'channel name is 64 bytes in UTF-8; PostgreSQL allows at most 63',
    ],
    ['NUL inside', 'a\u0000b', 'channel name contains NUL'],
    ['a lone surrogate', '\ud800', 'channel name is not valid Unicode'],
    [
      'a probe channel',
      'pgws.canary.1.x',
      'channel names starting with "pgws.canary." are reserved for the bridge\'s probes',
    ],
  ])('refuses a channel name that is %s as bad_channel, echoing the name and the id', (_, channel, message) => {
    for (const type of ['subscribe', 'unsubscribe', 'publish']) {
      const parsed = parseClientFrame(JSON.stringify({ type, id: 'i', channel, payload: 1 }));
      expect(parsed).toEqual({ ok: false, id: 'i', code: 'bad_channel', message, channel });
    }
  });

  test('63 bytes is the longest channel name a frame may carry', () => {
    expect(parseClientFrame(JSON.stringify({ type: 'subscribe', channel: 'x'.repeat(63) })).ok).toBe(true);
  });

  test('answers a frame nested 200,000 deep instead of overflowing the stack', () => {
    const deep = '['.repeat(200_000) + ']'.repeat(200_000);
    expect(parseClientFrame(deep)).toMatchObject({ ok: false, code: 'bad_request' });
    expect(parseClientFrame(`{"type":"publish","channel":"a","payload":${deep}}`).ok).toBe(true);
    expect(parseClientFrame(`{"type":"ping","id":${deep}}`)).toMatchObject({ ok: false, code: 'bad_request' });
  });

  test(`never throws, and every answer is well-formed, on random text and JSON (seed ${SEED})`, () => {
    const rng = rngFor('protocol-frames');
    const types = ['subscribe', 'unsubscribe', 'publish', 'auth', 'ping', 'pong', ''];
    const fields = ['id', 'channel', 'since', 'filter', 'payload', 'token', 'epoch', 'seq', '__proto__'];
    const inputs: string[] = [];
    for (let i = 0; i < scaled(2000); i++) {
      const frame: Record<string, unknown> = { type: rng.pick(types) };
      for (let n = rng.int(0, 4); n > 0; n--) frame[rng.pick(fields)] = randomJson(rng, 2);
      if (rng.chance(0.3)) frame['since'] = { epoch: randomJson(rng, 1), seq: randomJson(rng, 1) };
      const text = JSON.stringify(rng.chance(0.1) ? randomJson(rng) : frame);
      inputs.push(text);
      // Cut or corrupt the text so most of it is not JSON any more.
      const at = rng.int(0, text.length);
      inputs.push(text.slice(0, at) + String.fromCharCode(rng.int(0, 0xffff)) + text.slice(at + rng.int(0, 3)));
    }
    let accepted = 0;
    for (const text of inputs) {
      const parsed = parseClientFrame(text);
      if (parsed.ok) {
        expect(types).toContain(parsed.frame.type);
        accepted++;
        continue;
      }
      expect(['bad_request', 'bad_channel']).toContain(parsed.code);
      expect(parsed.id === undefined || typeof parsed.id === 'string' || Number.isFinite(parsed.id)).toBe(true);
      expect(parsed.message.length).toBeGreaterThan(0);
    }
    expect(accepted).toBeGreaterThan(0);
  });
});

describe('server frames (no database)', () => {
  test.each<[string, string, unknown]>([
    ['ready, anonymous', encodeReady(null, null), { type: 'ready', subject: null, expires: null }],
    ['ready, with a token', encodeReady('u1', 1700000000), { type: 'ready', subject: 'u1', expires: 1700000000 }],
    [
      'subscribed without since',
      encodeSubscribed({ channel: 'a', epoch: 'e.1', seq: 4 }),
      { type: 'subscribed', channel: 'a', epoch: 'e.1', seq: 4 },
    ],
    [
      'subscribed, recovered false',
      encodeSubscribed({ id: 1, channel: 'a', epoch: 'e.1', seq: 4, recovered: false }),
      { type: 'subscribed', id: 1, channel: 'a', epoch: 'e.1', seq: 4, recovered: false },
    ],
    ['gap', encodeGap('a', 'e.2', 0), { type: 'gap', channel: 'a', epoch: 'e.2', seq: 0 }],
    [
      'unsubscribed',
      encodeUnsubscribed('a', 'client', 'x'),
      { type: 'unsubscribed', id: 'x', channel: 'a', reason: 'client' },
    ],
    [
      'unsubscribed, forbidden',
      encodeUnsubscribed('a', 'forbidden'),
      { type: 'unsubscribed', channel: 'a', reason: 'forbidden' },
    ],
    ['published', encodePublished('a', 0), { type: 'published', id: 0, channel: 'a' }],
    ['pong without id', encodePong(), { type: 'pong' }],
    ['pong with id', encodePong('p'), { type: 'pong', id: 'p' }],
    [
      'error with everything',
      encodeError({
        id: 2,
        channel: 'a',
        code: 'invalid_payload',
        message: 'm',
        issues: [{ path: 'x', message: 'y' }],
      }),
      {
        type: 'error',
        id: 2,
        channel: 'a',
        code: 'invalid_payload',
        message: 'm',
        issues: [{ path: 'x', message: 'y' }],
      },
    ],
    [
      'error with nothing optional',
      encodeError({ code: 'bad_request', message: 'm' }),
      { type: 'error', code: 'bad_request', message: 'm' },
    ],
  ])('%s encodes to exactly the contract fields', (_, text, frame) => {
    expect(JSON.parse(text)).toStrictEqual(frame);
    expect(text.startsWith('{"type":')).toBe(true);
  });

  test('id is left out when the client sent none, even when passed as undefined', () => {
    expect(encodeSubscribed({ id: undefined, channel: 'a', epoch: 'e', seq: 0, recovered: undefined })).toBe(
      '{"type":"subscribed","channel":"a","epoch":"e","seq":0}',
    );
  });

  test('message is the pre-serialised channel and payload spliced in, byte for byte', () => {
    const channel = 'Order "Events"';
    const payload = '{"id":1,"note":"é\\u2028"}';
    const text = encodeMessage(JSON.stringify(channel), 12, payload);
    expect(text).toBe(`{"type":"message","channel":"Order \\"Events\\"","seq":12,"payload":${payload}}`);
    expect(JSON.parse(text)).toEqual({ type: 'message', channel, seq: 12, payload: { id: 1, note: 'é\u2028' } });
  });

  test('a raw channel payload travels as a JSON string of the exact text', () => {
    const raw = ' not "json" \n';
    expect(JSON.parse(encodeMessage('"raw"', 1, JSON.stringify(raw))).payload).toBe(raw);
  });

  test('the error-code table has exactly the contract codes, each with a one-line meaning', () => {
    expect(Object.keys(ErrorCode).sort()).toEqual([...ERROR_CODES].sort());
    for (const meaning of Object.values(ErrorCode)) expect(meaning).toMatch(/^[^\n]{10,120}$/);
  });
});

describe('subprotocol offer (no database)', () => {
  test.each([
    ['pgws.v1', true, undefined],
    [' pgws.v1 ', true, undefined],
    ['chat, pgws.v1', true, undefined],
    ['pgws.v1,bearer.abc.def', true, 'abc.def'],
    ['bearer.abc , pgws.v1', true, 'abc'],
    ['bearer.first, bearer.second, pgws.v1', true, 'first'],
    ['pgws.v1, bearer.', true, ''],
    ['PGWS.V1', false, undefined],
    ['pgws.v10', false, undefined],
    ['pgws.v1x, xpgws.v1', false, undefined],
    ['pgws.v1;q=1', false, undefined],
    ['Bearer.abc', false, undefined],
    ['bearer.abc', false, 'abc'],
    ['', false, undefined],
    [null, false, undefined],
  ])('%p offers pgws.v1: %p, token %p', (header, multiplexed, token) => {
    expect(readOffer(header)).toEqual({ multiplexed, token });
  });

  test('the subprotocol is named pgws.v1', () => {
    expect(SUBPROTOCOL).toBe('pgws.v1');
  });
});
