/**
 * Acceptance tests of the multiplexed protocol `pgws.v1` over real sockets: the handshake, frames the
 * server cannot honour, subscriptions on one socket, and how such a socket counts and closes.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { startBridge, type TestBridge, uniqueChannel, within } from './harness.ts';
import { connectMux, handshake, SUBPROTOCOL } from './mux.ts';

// Here, not only in test/setup.ts: bun:test's setDefaultTimeout is per file, and the preload's reaches only the first.
setDefaultTimeout(60_000);

describe('the handshake', () => {
  let t: TestBridge;
  beforeAll(async () => {
    t = await startBridge();
  });
  afterAll(() => t.stop());

  test('answers 101 selecting exactly pgws.v1 when other values are offered before it', async () => {
    const answer = await handshake(t.url, '/', `chat, superchat, ${SUBPROTOCOL}, other`);
    expect(answer.status).toBe(101);
    expect(answer.headers.get('sec-websocket-protocol')).toBe(SUBPROTOCOL);
    using client = await connectMux(t.url, { protocols: ['chat', SUBPROTOCOL] });
    expect(client.socket.protocol).toBe(SUBPROTOCOL);
  });

  test.each([
    ['no subprotocol at all', undefined],
    ['another subprotocol', 'chat'],
    ['a later version', 'pgws.v2'],
    ['pgws.v1 in other case', 'PGWS.V1'],
    ['pgws.v1 as a prefix of another value', 'pgws.v1x'],
  ])('refuses an upgrade on / offering %s with 400', async (_, protocols) => {
    expect((await handshake(t.url, '/', protocols)).status).toBe(400);
  });

  test('sends ready first, with no subject and no expiry when the bridge has no [auth]', async () => {
    using client = await connectMux(t.url);
    // And nothing else first: a ping sent now is answered by the very next frame.
    client.send({ type: 'ping', id: 'after ready' });
    await client.next('pong');
    expect(client.frames).toEqual([
      { type: 'ready', subject: null, expires: null },
      { type: 'pong', id: 'after ready' },
    ]);
  });
});

describe('frames the server cannot honour', () => {
  let t: TestBridge;
  beforeAll(async () => {
    t = await startBridge();
  });
  afterAll(() => t.stop());

  /** The error answering `text`, after which a ping must still get its pong. */
  async function answerTo(text: string) {
    using client = await connectMux(t.url);
    client.sendText(text);
    client.send({ type: 'ping', id: 'after' });
    const error = await client.next();
    expect(await client.next()).toEqual({ type: 'pong', id: 'after' });
    expect(client.socket.readyState).toBe(WebSocket.OPEN);
    expect(error.type).toBe('error');
    expect(typeof error.message).toBe('string');
    return error;
  }

  test.each<[string, string, string | number | undefined]>([
    ['text that is not JSON', '{"type":"ping"', undefined],
    ['an empty text', '', undefined],
    ['a JSON array', '[{"type":"ping","id":1}]', undefined],
    ['a JSON string', '"ping"', undefined],
    ['JSON null', 'null', undefined],
    ['an unknown type', '{"type":"subscribe_all","id":"u1"}', 'u1'],
    ['a type in other case', '{"type":"PING","id":"u2"}', 'u2'],
    ['no type', '{"id":2,"channel":"x"}', 2],
    ['a type that is not a string', '{"type":1,"id":3}', 3],
    ['a subscribe without channel', '{"type":"subscribe","id":4}', 4],
    ['a subscribe whose channel is a number', '{"type":"subscribe","id":5,"channel":5}', 5],
    ['a since without epoch', '{"type":"subscribe","id":6,"channel":"x","since":{"seq":0}}', 6],
    ['a since with a negative seq', '{"type":"subscribe","id":7,"channel":"x","since":{"epoch":"e","seq":-1}}', 7],
    ['a since with a string seq', '{"type":"subscribe","id":8,"channel":"x","since":{"epoch":"e","seq":"1"}}', 8],
    ['a since with a fractional seq', '{"type":"subscribe","id":9,"channel":"x","since":{"epoch":"e","seq":1.5}}', 9],
    ['a since that is a number', '{"type":"subscribe","id":10,"channel":"x","since":3}', 10],
    ['an unsubscribe without channel', '{"type":"unsubscribe","id":11}', 11],
    ['a publish without payload', '{"type":"publish","id":12,"channel":"x"}', 12],
    ['a publish whose channel is null', '{"type":"publish","id":13,"channel":null,"payload":1}', 13],
    ['an auth whose token is a number', '{"type":"auth","id":14,"token":5}', 14],
    ['a ping whose id is an object (not an ID, so not echoed)', '{"type":"ping","id":{"a":1}}', undefined],
    ['a ping whose id is a boolean (not an ID, so not echoed)', '{"type":"ping","id":true}', undefined],
  ])('answers %s with bad_request, echoing a valid id, and keeps the socket usable', async (_, text, id) => {
    const error = await answerTo(text);
    expect(error.code).toBe('bad_request');
    if (id === undefined) expect(error).not.toHaveProperty('id');
    else expect(error.id).toBe(id);
  });

  test('answers an auth frame with bad_request when the bridge has no [auth]', async () => {
    expect((await answerTo('{"type":"auth","token":"ey.x.y"}')).code).toBe('bad_request');
  });

  test.each([
    ['an empty channel name', 'subscribe', ''],
    ['a 64-byte channel name of 32 characters', 'subscribe', 'é'.repeat(32)],
    ['a 64-byte channel name', 'unsubscribe', 'x'.repeat(64)],
    ['an empty channel name', 'publish', ''],
  ])('answers %s in a %s with bad_channel', async (_, type, channel) => {
    const error = await answerTo(JSON.stringify({ type, id: 'b', channel, payload: 'p' }));
    expect(error).toMatchObject({ type: 'error', id: 'b', code: 'bad_channel' });
  });

  test('accepts a channel name of exactly 63 bytes', async () => {
    const channel = `${'é'.repeat(30)}${uniqueChannel('c').slice(0, 3)}`;
    using client = await connectMux(t.url);
    expect(await client.subscribe(channel)).toMatchObject({ type: 'subscribed', channel, seq: 0 });
  });

  test('closes the socket with 1003 on a binary frame', async () => {
    using client = await connectMux(t.url);
    client.socket.send(new Uint8Array([0x7b, 0x7d]));
    expect((await within(client.closed, 5000, 'the 1003 close')).code).toBe(1003);
  });

  test('answers a frame of exactly max_message_bytes (65536 by default) and closes with 1009 one byte over', async () => {
    using client = await connectMux(t.url);
    const frame = (bytes: number) => {
      const head = '{"type":"ping","id":"big","pad":"';
      return `${head}${'x'.repeat(bytes - head.length - 2)}"}`;
    };
    client.sendText(frame(65536));
    expect(await client.next()).toEqual({ type: 'pong', id: 'big' });
    client.sendText(frame(65537));
    expect((await within(client.closed, 5000, 'the 1009 close')).code).toBe(1009);
  });

  test.each<[string, string | number | undefined]>([
    ['a string id', 'p-1'],
    ['a number id', 42],
    ['id 0', 0],
    ['an empty string id', ''],
    ['no id', undefined],
  ])('answers a ping with %s with a pong echoing it', async (_, id) => {
    using client = await connectMux(t.url);
    client.send({ type: 'ping', id });
    expect(await client.next()).toEqual(id === undefined ? { type: 'pong' } : { type: 'pong', id });
  });
});
