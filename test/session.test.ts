/**
 * The multiplexed protocol engine without a socket or a database: a recording peer, the real hub and
 * catalog, and a listener whose LISTENs resolve when the test says so. The socket tests
 * (test/multiplexed*.test.ts) prove the wiring; these prove the rules, including the orderings a real
 * network makes hard to force (a LISTEN still on its way, a replay paused for a drain).
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test';
import { createAccess } from '../src/auth/access.ts';
import { createRevocations } from '../src/auth/revocations.ts';
import { createSubjectCounter } from '../src/auth/slots.ts';
import { silentLogger } from '../src/base/log.ts';
import { createStats } from '../src/base/stats.ts';
import type { CloseLabel } from '../src/base/wire.ts';
import { createCatalog } from '../src/channels/catalog.ts';
import type { ListenerState } from '../src/db/listener.ts';
import { createHub, type Hub } from '../src/protocol/hub.ts';
import { createSessions, type Sessions } from '../src/protocol/session.ts';
import type { Peer, SessionState } from '../src/protocol/state.ts';
import { configFrom } from './harness.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

const TOML = `
[server]
unknown_channels = "reject"
[channels.raw]
publish = true
[channels.events]
history = 50
publish = true
[channels.events.schema]
type = "object"
required = ["n"]
[channels.events.schema.properties.n]
type = "integer"
[channels.quiet]
[channels.extra]
`;

/**
 * A listener whose LISTENs wait for `settle`; publishes are recorded. Like the real one, it opens a
 * channel's stream in `hub` at its first reference and closes it at its last.
 */
function fakeListener(hub: Hub) {
  const pending = new Map<string, PromiseWithResolvers<void>>();
  const refs = new Map<string, number>();
  const published: Array<[string, string]> = [];
  const fake = {
    state: 'up' as ListenerState,
    published,
    /** Whether pgws.notify is installed, for publishes over NOTIFY's limit. */
    pgws: false,
    refs,
    acquire(channel: string) {
      if (!refs.has(channel)) hub.open(channel);
      refs.set(channel, (refs.get(channel) ?? 0) + 1);
      const listen = Promise.withResolvers<void>();
      pending.set(channel, listen);
      return listen.promise;
    },
    release(channel: string) {
      const count = (refs.get(channel) ?? 0) - 1;
      if (count > 0) return void refs.set(channel, count);
      refs.delete(channel);
      hub.close(channel);
    },
    has: (channel: string) => refs.has(channel),
    get channelCount() {
      return refs.size;
    },
    queries: {
      async publish(channel: string, payload: string) {
        published.push([channel, payload]);
      },
      async publishLarge(channel: string, payload: string) {
        if (fake.pgws) published.push([channel, `pgws.notify: ${Buffer.byteLength(payload)} bytes`]);
        return fake.pgws;
      },
      async send(channel: string, payload: string) {
        published.push([channel, `pgws.send: ${payload}`]);
        return { ok: true as const, value: published.length };
      },
    },
    /** Completes the LISTEN of `channel` (a microtask later, as postgres.js would). */
    async settle(channel: string) {
      pending.get(channel)?.resolve();
      await Bun.sleep(0);
    },
  };
  return fake;
}

type Frame = Record<string, unknown>;

/** A peer that records what it is sent; `backlog` is what `buffered()` reports. */
interface FakePeer extends Peer {
  readonly sent: Frame[];
  readonly topics: Set<string>;
  readonly closes: CloseLabel[];
  backlog: number;
  send(text: string): number;
}

function fakePeer(): FakePeer {
  const sent: Frame[] = [];
  const topics = new Set<string>();
  const closes: CloseLabel[] = [];
  const peer: FakePeer = {
    sent,
    topics,
    closes,
    backlog: 0,
    send(text: string) {
      sent.push(JSON.parse(text));
      return text.length;
    },
    buffered: () => peer.backlog,
    subscribe: (topic: string) => void topics.add(topic),
    unsubscribe: (topic: string) => void topics.delete(topic),
    close: (cause: CloseLabel) => void closes.push(cause),
    identify() {},
  };
  return peer;
}

async function engine(
  limits: Partial<{ maxSubscriptions: number; maxChannels: number; publishRate: number; maxPayloadBytes: number }> = {},
) {
  const config = await configFrom(TOML);
  const catalog = createCatalog(config);
  const hub: Hub = createHub({ history: catalog.history });
  const listener = fakeListener(hub);
  // `events` keeps history, so it is LISTENed from the start, as the bridge pins it.
  listener.acquire('events');
  await listener.settle('events');
  const stats = createStats();
  const sessions: Sessions = createSessions({
    catalog,
    hub,
    listener,
    limits: {
      maxSubscriptions: 3,
      maxChannels: 10,
      publishRate: 5,
      replayBudgetBytes: 200,
      maxPayloadBytes: 1024 * 1024,
      ...limits,
    },
    stats,
    access: createAccess({
      auth: undefined,
      verifier: undefined,
      isPublic: catalog.isPublic,
      revocations: createRevocations(false),
      stats,
      log: silentLogger,
    }),
    slots: createSubjectCounter(0),
    log: silentLogger,
  });
  const topicsPublished: Array<[string, string]> = [];
  const publish = (topic: string, frame: string) => void topicsPublished.push([topic, frame]);
  return { sessions, listener, hub, stats, publish, topicsPublished };
}

function open(sessions: Sessions) {
  const peer = fakePeer();
  const state: SessionState = sessions.open(peer, undefined);
  const send = (frame: unknown) => sessions.message(peer, state, JSON.stringify(frame));
  return { peer, state, send };
}

const types = (sent: readonly Frame[]) => sent.map((frame) => frame['type']);

describe('subscribe (no socket, no database)', () => {
  test('answers only once the LISTEN is in place, then joins the topic in the same step', async () => {
    const { sessions, listener } = await engine();
    const { peer, send } = open(sessions);
    send({ type: 'subscribe', id: 7, channel: 'quiet' });
    expect(types(peer.sent)).toEqual(['ready']);
    expect(peer.topics.size).toBe(0);
    await listener.settle('quiet');
    expect(peer.sent[1]).toMatchObject({ type: 'subscribed', id: 7, channel: 'quiet', seq: 0 });
    expect(peer.sent[1]).not.toHaveProperty('recovered');
    expect(peer.topics.size).toBe(1);
  });

  test('an unsubscribe while the LISTEN is on its way is answered right after the subscribe, and the LISTEN is given back', async () => {
    const { sessions, listener } = await engine();
    const { peer, send } = open(sessions);
    send({ type: 'subscribe', id: 's', channel: 'quiet' });
    send({ type: 'unsubscribe', id: 'u', channel: 'quiet' });
    send({ type: 'unsubscribe', id: 'again', channel: 'quiet' });
    expect(peer.sent.slice(1)).toEqual([expect.objectContaining({ id: 'again', code: 'not_subscribed' })]);
    await listener.settle('quiet');
    expect(peer.sent.slice(2).map((frame) => [frame['type'], frame['id']])).toEqual([
      ['subscribed', 's'],
      ['unsubscribed', 'u'],
    ]);
    expect(listener.has('quiet')).toBe(false);
    expect(peer.topics.size).toBe(0);
  });

  test('a socket closed while its LISTEN is on its way sends nothing more and gives the LISTEN back', async () => {
    const { sessions, listener } = await engine();
    const { peer, state, send } = open(sessions);
    send({ type: 'subscribe', channel: 'quiet' });
    sessions.close(state);
    await listener.settle('quiet');
    expect(types(peer.sent)).toEqual(['ready']);
    expect(listener.has('quiet')).toBe(false);
  });

  test.each([
    ['a second subscribe to one channel', [{ channel: 'quiet' }], { channel: 'quiet' }, 'already_subscribed'],
    ['an undeclared channel with unknown_channels = "reject"', [], { channel: 'nope' }, 'unknown_channel'],
    ['a filter on a channel without a schema', [], { channel: 'raw', filter: { a: 1 } }, 'bad_request'],
    ['a malformed filter', [], { channel: 'events', filter: { a: { between: [1, 2] } } }, 'bad_request'],
    [
      'a fourth subscription with max_subscriptions = 3',
      [{ channel: 'quiet' }, { channel: 'raw' }, { channel: 'events' }],
      { channel: 'extra', id: 'x' },
      'too_many_subscriptions',
    ],
  ])('refuses %s', async (_, before, frame, code) => {
    const { sessions, listener } = await engine();
    const { peer, send } = open(sessions);
    for (const earlier of before) send({ type: 'subscribe', ...earlier });
    for (const earlier of before) await listener.settle(earlier.channel);
    send({ type: 'subscribe', ...frame });
    expect(peer.sent.at(-1)).toMatchObject({ type: 'error', code, channel: frame.channel });
  });

  test('is unavailable while the database is down, and past max_channels', async () => {
    const { sessions, listener } = await engine({ maxChannels: 1 });
    const { peer, send } = open(sessions);
    listener.state = 'down';
    send({ type: 'subscribe', channel: 'quiet' });
    expect(peer.sent.at(-1)).toMatchObject({ type: 'error', code: 'unavailable' });
    listener.state = 'up';
    send({ type: 'subscribe', channel: 'quiet' });
    await listener.settle('quiet');
    send({ type: 'subscribe', channel: 'raw' });
    expect(peer.sent.at(-1)).toMatchObject({ type: 'error', code: 'unavailable', channel: 'raw' });
  });
});

describe('resume (no socket, no database)', () => {
  const fill = (hub: Hub, publish: (t: string, f: string) => void, from: number, to: number) => {
    for (let n = from; n <= to; n++) hub.deliver('events', `{"n":${n}}`, publish);
  };

  test('a replay larger than the send budget goes out in parts, takes in what arrives meanwhile, then goes live', async () => {
    const { sessions, listener, hub, publish } = await engine();
    fill(hub, publish, 1, 20);
    const { epoch } = hub.position('events');
    const { peer, state, send } = open(sessions);
    send({ type: 'subscribe', channel: 'events', since: { epoch, seq: 0 } });
    peer.backlog = 0;
    // Every send leaves ~40 bytes queued: after five the budget (200) is spent and the replay waits.
    const send0 = peer.send;
    peer.send = (text: string) => {
      peer.backlog += text.length;
      return send0(text);
    };
    await listener.settle('events');
    expect(peer.sent[1]).toMatchObject({ type: 'subscribed', seq: 0, recovered: true });
    expect(peer.topics.size).toBe(0);
    while (peer.topics.size === 0) {
      fill(hub, publish, hub.position('events').seq + 1, hub.position('events').seq + 1);
      peer.backlog = 0;
      sessions.drain(peer, state);
    }
    const seqs = peer.sent.filter((frame) => frame['type'] === 'message').map((frame) => frame['seq']);
    expect(seqs).toEqual(Array.from({ length: hub.position('events').seq }, (_, i) => i + 1));
  });

  test('a paused replay that history has moved past closes the client as a slow consumer', async () => {
    const { sessions, listener, hub, publish } = await engine();
    fill(hub, publish, 1, 50);
    const { peer, state, send } = open(sessions);
    peer.backlog = 10_000;
    send({ type: 'subscribe', channel: 'events', since: { epoch: hub.position('events').epoch, seq: 0 } });
    await listener.settle('events');
    fill(hub, publish, 51, 120);
    peer.backlog = 0;
    sessions.drain(peer, state);
    expect(peer.closes).toEqual(['slow_consumer']);
  });

  test('a paused replay whose stream broke gets the gap itself, then goes live in the new epoch', async () => {
    const { sessions, listener, hub, publish } = await engine();
    fill(hub, publish, 1, 10);
    const { peer, state, send } = open(sessions);
    peer.backlog = 10_000;
    send({ type: 'subscribe', channel: 'events', since: { epoch: hub.position('events').epoch, seq: 0 } });
    await listener.settle('events');
    hub.broken(publish);
    peer.backlog = 0;
    sessions.drain(peer, state);
    expect(peer.sent.at(-1)).toEqual({ type: 'gap', channel: 'events', epoch: hub.position('events').epoch, seq: 0 });
    expect(peer.topics.size).toBe(1);
  });

  test('a replay applies the subscription filter', async () => {
    const { sessions, listener, hub, publish } = await engine();
    fill(hub, publish, 1, 10);
    const { peer, send } = open(sessions);
    send({
      type: 'subscribe',
      channel: 'events',
      since: { epoch: hub.position('events').epoch, seq: 2 },
      filter: { n: { gt: 7 } },
    });
    await listener.settle('events');
    expect(peer.sent.filter((f) => f['type'] === 'message').map((f) => f['seq'])).toEqual([8, 9, 10]);
  });
});

describe('publish (no socket, no database)', () => {
  test('sends the schema output with bound parameters, and counts refused frames against the rate', async () => {
    const { sessions, listener, stats } = await engine({ publishRate: 3 });
    const { peer, send } = open(sessions);
    send({ type: 'publish', id: 1, channel: 'events', payload: { n: "'); DROP TABLE x; --" } });
    send({ type: 'publish', id: 2, channel: 'quiet', payload: 'x' });
    send({ type: 'publish', id: 3, channel: 'raw', payload: "$1'; SELECT 1; --" });
    send({ type: 'publish', id: 4, channel: 'raw', payload: 'fourth' });
    await Bun.sleep(0);
    const answers = peer.sent.slice(1).map((f) => [f['id'], f['type'] === 'error' ? f['code'] : f['type']]);
    expect(answers).toEqual([
      [1, 'invalid_payload'],
      [2, 'forbidden'],
      [4, 'rate_limited'],
      [3, 'published'],
    ]);
    expect(listener.published).toEqual([['raw', "$1'; SELECT 1; --"]]);
    expect(Object.fromEntries(stats.publishes.get('ws') ?? [])).toEqual({
      invalid: 1,
      forbidden: 1,
      rate_limited: 1,
      published: 1,
    });
  });

  test('refuses a payload over 7999 bytes without pgws.notify, and a non-string on a raw channel', async () => {
    const { sessions } = await engine();
    const { peer, send } = open(sessions);
    send({ type: 'publish', channel: 'raw', payload: 'é'.repeat(4000) });
    send({ type: 'publish', channel: 'raw', payload: 42 });
    await Bun.sleep(0);
    expect(peer.sent.slice(1).map((f) => f['code'])).toEqual(['invalid_payload', 'payload_too_large']);
  });

  test('sends a payload over 7999 bytes through pgws.notify, and refuses one over max_payload_bytes', async () => {
    const { sessions, listener } = await engine({ maxPayloadBytes: 10_000 });
    listener.pgws = true;
    const { peer, send } = open(sessions);
    send({ type: 'publish', id: 1, channel: 'raw', payload: 'x'.repeat(7999) });
    send({ type: 'publish', id: 2, channel: 'raw', payload: 'é'.repeat(4000) });
    send({ type: 'publish', id: 3, channel: 'raw', payload: 'x'.repeat(10_001) });
    await Bun.sleep(0);
    const answers = peer.sent.slice(1).map((f) => [f['id'], f['type'] === 'error' ? f['code'] : f['type']]);
    expect(answers).toEqual([
      [3, 'payload_too_large'],
      [1, 'published'],
      [2, 'published'],
    ]);
    const sent = listener.published.map(([, text]) => (text.startsWith('pgws.notify') ? text : text.length));
    expect(sent).toEqual([7999, 'pgws.notify: 8000 bytes']);
  });
});

describe('the hub (no socket, no database)', () => {
  test('one filter in any key order is one topic; each notification goes once to each matching topic', async () => {
    const { hub, publish, topicsPublished } = await engine();
    const a = hub.join('events', { key: '{"n":{"gt":1}}', match: (v) => (v as { n: number }).n > 1 });
    const b = hub.join('events', { key: '{"n":{"gt":1}}', match: () => false });
    hub.join('events', undefined);
    expect(a.topic).toBe(b.topic);
    expect(hub.filterTopics).toBe(1);
    expect(hub.deliver('events', '{"n":2}', publish)).toBe(3);
    expect(hub.deliver('events', '{"n":0}', publish)).toBe(1);
    expect(topicsPublished.map(([topic]) => topic === a.topic)).toEqual([false, true, false]);
  });

  test('a stream lives while its channel is LISTENed; closed, it is forgotten, and its next one starts a new epoch', async () => {
    const { hub } = await engine();
    hub.open('quiet');
    const membership = hub.join('quiet', undefined);
    const first = hub.position('quiet').epoch;
    hub.leave('quiet', membership);
    expect(hub.position('quiet').epoch).toBe(first);
    hub.close('quiet');
    expect(hub.has('quiet')).toBe(false);
    hub.open('quiet');
    expect(hub.position('quiet').epoch).not.toBe(first);
  });

  test('a channel with no multiplexed subscriber and no history still counts seqs, without encoding anything', () => {
    const hub = createHub({ history: () => 0 });
    hub.open('plain');
    let encoded = 0;
    const payload = () => {
      encoded += 1;
      return '"x"';
    };
    for (let i = 0; i < 3; i++) expect(hub.deliver('plain', payload, () => {})).toBe(0);
    expect(encoded).toBe(0);
    expect(hub.position('plain').seq).toBe(3);
    const sent: string[] = [];
    hub.join('plain', undefined);
    expect(hub.deliver('plain', payload, (_topic, frame) => sent.push(frame))).toBe(1);
    expect(sent.map((frame) => JSON.parse(frame))).toEqual([
      { type: 'message', channel: 'plain', seq: 4, payload: 'x' },
    ]);
  });

  test("a worker's hub follows the primary's: same position and history from the snapshot and each delivery", () => {
    const publish = () => {};
    const primary = createHub({ history: () => 5 });
    const worker = createHub({ history: () => 5 });
    primary.open('events');
    for (let n = 1; n <= 7; n++) primary.deliver('events', `{"n":${n}}`, publish);
    worker.open('events', primary.snapshot('events'));
    const alike = (since: number) => {
      const at = { epoch: primary.position('events').epoch, seq: since };
      expect(worker.position('events')).toEqual(primary.position('events'));
      expect(worker.resume('events', at)).toEqual(primary.resume('events', at));
    };
    alike(2);
    alike(4);
    primary.deliver('events', '{"n":8}', publish);
    const at = primary.position('events');
    expect(worker.deliver('events', '{"n":8}', publish, at)).toBe(0);
    alike(5);
    // A delivery seen twice is kept once.
    worker.deliver('events', '{"n":8}', publish, at);
    alike(3);
    // After a hole nothing before it is recoverable: never a partial replay.
    worker.deliver('events', '{"n":10}', publish, { epoch: at.epoch, seq: at.seq + 2 });
    expect(worker.resume('events', at)).toEqual({ recovered: false });
    expect(worker.resume('events', { epoch: at.epoch, seq: at.seq + 1 })).toMatchObject({ recovered: true });
    // A worker keeping less history than the primary sent holds the newest, at the primary's head.
    const small = createHub({ history: () => 2 });
    small.open('events', primary.snapshot('events'));
    const head = primary.position('events');
    expect(small.position('events')).toEqual(head);
    expect(small.resume('events', { epoch: head.epoch, seq: head.seq - 2 })).toMatchObject({ recovered: true });
    expect(small.resume('events', { epoch: head.epoch, seq: head.seq - 3 })).toEqual({ recovered: false });
  });

  test("after a loss a worker's streams start the epochs the primary names, and subscribers get a gap at them", () => {
    const sent: string[] = [];
    const worker = createHub({ history: () => 5 });
    worker.open('events', { epoch: 'p.1', head: 2, entries: [[2, '{"n":2}']] });
    worker.join('events', undefined);
    expect(
      worker.broken(
        (_topic, frame) => sent.push(frame),
        (channel) => (channel === 'events' ? 'p.2' : undefined),
      ),
    ).toBe(1);
    expect(worker.position('events')).toEqual({ epoch: 'p.2', seq: 0 });
    expect(sent.map((frame) => JSON.parse(frame))).toEqual([{ type: 'gap', channel: 'events', epoch: 'p.2', seq: 0 }]);
  });
});
