/**
 * `[server] workers > 1` without processes or a database: the primary's side (src/cluster/primary.ts)
 * and a worker's listener (src/cluster/follower.ts), each driven through its IPC messages
 * (src/cluster/messages.ts) over a link that records what is sent. The primary's LISTEN connection and
 * hub are small fakes of what its options take; the follower's query connection is a real one that
 * never connects (postgres.js connects at the first statement, and nothing here sends one).
 */
import { describe, expect, test } from 'bun:test';
import { type Cutoff, createRevocations } from '../src/auth/revocations.ts';
import { createSubjectCounter } from '../src/auth/slots.ts';
import { ChannelLimitError } from '../src/base/errors.ts';
import { createLogger } from '../src/base/log.ts';
import { createStats } from '../src/base/stats.ts';
import { createFollower } from '../src/cluster/follower.ts';
import type { ToPrimary, ToWorker, WorkerLink } from '../src/cluster/messages.ts';
import { createCluster } from '../src/cluster/primary.ts';
import type { ListenerState } from '../src/db/listener.ts';
import { createQueries } from '../src/db/queries.ts';
import type { WorkerSample } from '../src/observe/aggregate.ts';
import type { Position, Snapshot } from '../src/protocol/history.ts';
import { fakeClock } from './clock.ts';

const PROBE = 'pgws_probe.worker';
const UNREACHABLE = 'postgres://pgws@127.0.0.1:1/never';

/** One turn of the event loop: every promise callback and microtask queued before it has run. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

const snapshot = (epoch: string, head = 0): Snapshot => ({ epoch, head, entries: [] });

/** A worker's follower with everything it reports recorded; `up()` plays the primary's welcome and `up`. */
function startFollower(options: { limited?: boolean } = {}) {
  const sent: ToPrimary[] = [];
  const cutoffs: Cutoff[] = [];
  const opened: (readonly [string, Snapshot])[] = [];
  const closed: string[] = [];
  const delivered: (readonly [string, string, Position])[] = [];
  const states: (readonly [ListenerState, ((channel: string) => string | undefined) | undefined])[] = [];
  const notifications: (readonly [string, string])[] = [];
  const clock = fakeClock();
  const follower = createFollower({
    send: (message) => void sent.push(message),
    queries: createQueries(UNREACHABLE),
    probeChannel: PROBE,
    onListen: (channel, from) => void opened.push([channel, from]),
    onUnlisten: (channel) => void closed.push(channel),
    sample: async () => ({ worker: 'metrics' }),
    limited: options.limited ?? false,
    log: createLogger({ write: () => {} }),
    clock,
  });
  follower.start({
    notification: (channel, payload) => void notifications.push([channel, payload]),
    state: (state, epochs) => void states.push([state, epochs]),
    delivered: (channel, frame, at) => void delivered.push([channel, frame, at]),
    cutoff: (cutoff) => void cutoffs.push(cutoff),
    gap: (channel, at) => void delivered.push([channel, 'gap', at]),
  });
  const up = (pinned: (readonly [string, Snapshot])[] = []) => {
    follower.receive({ t: 'welcome', state: 'connecting', pinned });
    follower.receive({ t: 'state', state: 'up' });
  };
  /** The ids of the `listen` messages sent for `channel`. */
  const listens = (channel: string) =>
    sent.flatMap((message) => (message.t === 'listen' && message.channel === channel ? [message.id] : []));
  const unlistens = () => sent.filter((message) => message.t === 'unlisten');
  return { follower, sent, opened, closed, delivered, states, notifications, cutoffs, clock, up, listens, unlistens };
}

describe("a worker's follower (no process, no database)", () => {
  test('says hello with its probe channel when started', () => {
    const { sent } = startFollower();
    expect(sent).toEqual([{ t: 'hello', probe: PROBE }]);
  });

  test('asks the primary once per channel however many clients hold it, and unlistens when the last leaves', async () => {
    const { follower, opened, closed, up, listens, unlistens } = startFollower();
    up();
    const acquired = [follower.acquire('a'), follower.acquire('a'), follower.acquire('a')];
    expect(listens('a')).toHaveLength(1);
    follower.receive({ t: 'listened', id: listens('a')[0] ?? 0, snapshot: snapshot('E', 4) });
    await Promise.all(acquired);
    expect(opened).toEqual([['a', snapshot('E', 4)]]);
    expect(follower.channelCount).toBe(1);
    follower.release('a');
    follower.release('a');
    expect(unlistens()).toEqual([]);
    follower.release('a');
    expect(unlistens()).toEqual([{ t: 'unlisten', channel: 'a' }]);
    expect(closed).toEqual(['a']);
    expect(follower.has('a')).toBe(false);
  });

  test('gives back with unlisten a channel whose answer arrives after every subscriber left', async () => {
    const { follower, opened, closed, up, listens, unlistens } = startFollower();
    up();
    void follower.acquire('a', 60_000).catch(() => {});
    follower.release('a');
    // The primary has not answered yet: there is nothing to give back until it does.
    expect(unlistens()).toEqual([]);
    expect(closed).toEqual(['a']);
    follower.receive({ t: 'listened', id: listens('a')[0] ?? 0, snapshot: snapshot('E') });
    expect(unlistens()).toEqual([{ t: 'unlisten', channel: 'a' }]);
    expect(opened).toEqual([]);
    expect(follower.has('a')).toBe(false);
  });

  test('a listen refused for max_channels rejects with ChannelLimitError naming the limit, and is asked again later', async () => {
    const { follower, closed, up, listens, unlistens } = startFollower();
    up();
    const refused = follower.acquire('a');
    follower.receive({ t: 'listened', id: listens('a')[0] ?? 0, error: 'channel limit reached', maxChannels: 2 });
    const error = await refused.catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ChannelLimitError);
    expect(error).toMatchObject({ maxChannels: 2 });
    // Never LISTENed, so nothing to give back and nothing opened to close.
    expect([follower.has('a'), unlistens(), closed]).toEqual([false, [], []]);
    void follower.acquire('a', 60_000).catch(() => {});
    expect(listens('a')).toHaveLength(2);
  });

  test('a listen the primary could not make rejects with its message, not as a channel limit', async () => {
    const { follower, up, listens } = startFollower();
    up();
    const refused = follower.acquire('a');
    follower.receive({ t: 'listened', id: listens('a')[0] ?? 0, error: 'database is down' });
    const error = await refused.catch((caught: unknown) => caught);
    expect(error).not.toBeInstanceOf(ChannelLimitError);
    expect(error).toMatchObject({ message: 'database is down' });
  });

  test('refuses an acquire while the primary is not up, without asking it', async () => {
    const { follower, sent } = startFollower();
    follower.receive({ t: 'welcome', state: 'down', pinned: [] });
    await expect(follower.acquire('a')).rejects.toThrow('database is down');
    expect(sent.filter((message) => message.t === 'listen')).toEqual([]);
  });

  test('welcome opens the pinned channels at the snapshots it carries, held for good', async () => {
    const { follower, opened, states, up, listens, unlistens } = startFollower();
    up([['history', snapshot('Eh', 9)]]);
    expect(opened).toEqual([['history', snapshot('Eh', 9)]]);
    expect(states.map(([state]) => state)).toEqual(['up']);
    await follower.acquire('history');
    follower.release('history');
    expect(listens('history')).toEqual([]);
    expect(unlistens()).toEqual([]);
    expect(follower.has('history')).toBe(true);
  });

  test('deliver batches reach delivered in order, each with the position the primary gave it', () => {
    const { follower, delivered, up } = startFollower();
    up();
    follower.receive({
      t: 'deliver',
      batch: [
        ['a', 'one', 'Ea', 1],
        ['b', 'two', 'Eb', 7],
      ],
      bytes: 2,
    });
    follower.receive({ t: 'deliver', batch: [['a', 'three', 'Ea', 2]], bytes: 1 });
    expect(delivered).toEqual([
      ['a', 'one', { epoch: 'Ea', seq: 1 }],
      ['b', 'two', { epoch: 'Eb', seq: 7 }],
      ['a', 'three', { epoch: 'Ea', seq: 2 }],
    ]);
  });

  test('acknowledges each deliver batch with its bytes once it has handed the deliveries on', () => {
    const { follower, sent, delivered, up } = startFollower();
    up();
    const acks = () => sent.filter((message) => message.t === 'ack');
    follower.receive({ t: 'deliver', batch: [['a', 'one', 'Ea', 1]], bytes: 70 });
    expect([delivered.length, acks()]).toEqual([1, [{ t: 'ack', bytes: 70 }]]);
    follower.receive({ t: 'deliver', batch: [['a', 'two', 'Ea', 2]], bytes: 71 });
    expect(acks()).toEqual([
      { t: 'ack', bytes: 70 },
      { t: 'ack', bytes: 71 },
    ]);
  });

  test('after a loss, hands on the epoch each channel starts, and counts the reconnect as a new generation', () => {
    const { follower, states, up } = startFollower();
    up();
    expect(follower.generation).toBe(1);
    follower.receive({ t: 'state', state: 'down', epochs: [['a', 'E2']] });
    const [state, epochs] = states.at(-1) ?? [];
    expect(state).toBe('down');
    expect([epochs?.('a'), epochs?.('b')]).toEqual(['E2', undefined]);
    follower.receive({ t: 'state', state: 'up' });
    expect([follower.state, follower.generation, follower.reconnects]).toEqual(['up', 2, 1]);
  });

  test("hands a probe from the primary to its events as a notification on the worker's probe channel", () => {
    const { follower, notifications } = startFollower();
    follower.receive({ t: 'probe', token: 'canary-1' });
    expect(notifications).toEqual([[PROBE, 'canary-1']]);
  });

  test('answers the primary with its own metrics sample', async () => {
    const { follower, sent } = startFollower();
    follower.receive({ t: 'sample', id: 4 });
    await turn();
    expect(sent.at(-1)).toEqual({ t: 'sampled', id: 4, metrics: { worker: 'metrics' } });
  });

  test("resolves a scrape with the primary's answer to it, and leaves no timer behind", async () => {
    const { follower, sent, clock } = startFollower();
    const text = follower.scrape(true);
    const asked = sent.at(-1);
    expect(asked).toMatchObject({ t: 'scrape', byWorker: true });
    const id = asked?.t === 'scrape' ? asked.id : -1;
    follower.receive({ t: 'scraped', id: id + 1, text: 'an answer to another request' });
    follower.receive({ t: 'scraped', id, text: 'the whole server' });
    expect(await text).toBe('the whole server');
    expect(clock.pending).toBe(0);
  });

  test('rejects a scrape the primary does not answer within 3 s, and not before', async () => {
    const { follower, clock } = startFollower();
    let outcome = 'pending';
    const text = follower.scrape(false).catch((error: Error) => {
      outcome = error.message;
    });
    clock.advance(2999);
    await turn();
    expect(outcome).toBe('pending');
    clock.advance(1);
    await text;
    expect(outcome).toBe('the primary did not answer the metrics request');
  });

  test('claims a slot of a subject from the primary, and gives it back with an unclaim', async () => {
    const { follower, sent } = startFollower({ limited: true });
    const granted = follower.slots.take('alice');
    const refused = follower.slots.take('alice');
    const claims = sent.filter((message) => message.t === 'claim');
    expect(claims).toEqual([
      { t: 'claim', id: expect.any(Number), subject: 'alice' },
      { t: 'claim', id: expect.any(Number), subject: 'alice' },
    ]);
    follower.receive({ t: 'claimed', id: claims[0]?.id ?? 0, ok: true });
    follower.receive({ t: 'claimed', id: claims[1]?.id ?? 0, ok: false });
    expect([await granted, await refused]).toEqual([true, false]);
    follower.slots.give('alice');
    expect(sent.at(-1)).toEqual({ t: 'unclaim', subject: 'alice' });
  });

  test('without a limit claims nothing and sends nothing', async () => {
    const { follower, sent } = startFollower();
    expect(await follower.slots.take('alice')).toBe(true);
    follower.slots.give('alice');
    expect(sent).toEqual([{ t: 'hello', probe: PROBE }]);
  });

  test('refuses a claim the primary does not answer within 7 s, and gives back a slot granted after that', async () => {
    const { follower, sent, clock } = startFollower({ limited: true });
    const taken = follower.slots.take('alice');
    clock.advance(7000);
    expect(await taken).toBe(false);
    const claim = sent.find((message) => message.t === 'claim');
    follower.receive({ t: 'claimed', id: claim?.t === 'claim' ? claim.id : 0, ok: true });
    expect(sent.at(-1)).toEqual({ t: 'unclaim', subject: 'alice' });
  });

  test("hands the primary's cut-offs to its events in order", () => {
    const { follower, cutoffs } = startFollower();
    const sent: Cutoff[] = [
      { kind: 'revocations', rows: [['alice', 1000]] },
      { kind: 'disconnect', subject: 'bob', reason: 'bye' },
      { kind: 'revocation', subject: 'alice', before: undefined },
    ];
    for (const cutoff of sent) follower.receive({ t: 'cutoff', cutoff });
    expect(cutoffs).toEqual(sent);
  });
});

/** A LISTEN connection as the primary's options take it: every acquire and release recorded. */
function fakeListener() {
  const refusals = new Map<string, Error>();
  const waiting = new Map<string, PromiseWithResolvers<void>>();
  return {
    state: 'up' as ListenerState,
    acquired: [] as string[],
    released: [] as string[],
    /** The next acquires of `channel` fail with `error`. */
    refuse: (channel: string, error: Error) => void refusals.set(channel, error),
    /** The next acquires of `channel` wait until the returned function is called. */
    hold(channel: string) {
      const held = Promise.withResolvers<void>();
      waiting.set(channel, held);
      return held.resolve;
    },
    acquire(channel: string): Promise<void> {
      this.acquired.push(channel);
      const refusal = refusals.get(channel);
      if (refusal !== undefined) return Promise.reject(refusal);
      return waiting.get(channel)?.promise ?? Promise.resolve();
    },
    release(channel: string) {
      this.released.push(channel);
    },
  };
}

/**
 * The primary with a fake listener and hub; `worker(i)` attaches a worker that has said hello, over a link
 * that records what it is sent and how often it is killed.
 */
function startPrimary(pinned: string[] = [], limit = 0, backlogBytes = 64 * 1024 * 1024) {
  const listener = fakeListener();
  const slots = createSubjectCounter(limit);
  const revocations = createRevocations(true);
  const positions = new Map<string, Position>();
  const hub = {
    has: (channel: string) => positions.has(channel),
    snapshot: (channel: string) => snapshot(positions.get(channel)?.epoch ?? 'unknown', positions.get(channel)?.seq),
    position: (channel: string) => positions.get(channel) ?? { epoch: 'unknown', seq: 0 },
  };
  const logs: string[] = [];
  const aggregated: (readonly [readonly WorkerSample[], boolean])[] = [];
  const clock = fakeClock();
  const stats = createStats();
  const cluster = createCluster({
    listener,
    hub,
    pinned,
    slots,
    revocations,
    sample: async () => 'the primary',
    async aggregate(samples, byWorker) {
      aggregated.push([samples, byWorker]);
      return `${samples.length} samples`;
    },
    backlogBytes,
    stats,
    log: createLogger({ level: 'debug', write: (line) => logs.push(line) }),
    clock,
  });
  const worker = (index: number) => {
    const inbox: ToWorker[] = [];
    const killed: number[] = [];
    const link: WorkerLink = {
      index,
      send: (message) => void inbox.push(message),
      kill: () => void killed.push(index),
    };
    const probe = `${PROBE}${index}`;
    cluster.attach(link);
    cluster.receive(link, { t: 'hello', probe });
    return {
      link,
      inbox,
      killed,
      probe,
      say: (message: ToPrimary) => cluster.receive(link, message),
      /** Acknowledges the last `deliver`, as a worker does once it has handed it on. */
      ack: () => cluster.receive(link, { t: 'ack', bytes: inbox.findLast((m) => m.t === 'deliver')?.bytes ?? 0 }),
      /** What it was sent of type `t`. */
      got: <T extends ToWorker['t']>(t: T) => inbox.filter((m): m is Extract<ToWorker, { t: T }> => m.t === t),
    };
  };
  return { cluster, listener, positions, logs, aggregated, clock, worker, slots, revocations, stats };
}

describe('the primary (no process, no database)', () => {
  test("welcomes a worker with the pinned channels' snapshots, then holds its probe and says up", async () => {
    const { listener, positions, worker } = startPrimary(['history']);
    positions.set('history', { epoch: 'Eh', seq: 3 });
    const w = worker(1);
    expect(w.inbox).toEqual([{ t: 'welcome', state: 'connecting', pinned: [['history', snapshot('Eh', 3)]] }]);
    await turn();
    expect(listener.acquired).toEqual([w.probe]);
    expect(w.inbox.at(-1)).toEqual({ t: 'state', state: 'up' });
  });

  test('while its connection is down, welcomes a worker with that state and holds its probe at the next up', async () => {
    const { cluster, listener, worker } = startPrimary();
    listener.state = 'down';
    const w = worker(1);
    expect(w.inbox).toEqual([{ t: 'welcome', state: 'down', pinned: [] }]);
    await turn();
    expect(listener.acquired).toEqual([]);
    listener.state = 'up';
    cluster.state('up');
    await turn();
    expect(listener.acquired).toEqual([w.probe]);
    expect(w.inbox.at(-1)).toEqual({ t: 'state', state: 'up' });
  });

  test("LISTENs for each worker's listen and answers it with the channel's snapshot", async () => {
    const { listener, positions, worker } = startPrimary();
    positions.set('a', { epoch: 'Ea', seq: 5 });
    const [one, two] = [worker(1), worker(2)];
    one.say({ t: 'listen', id: 1, channel: 'a' });
    two.say({ t: 'listen', id: 1, channel: 'a' });
    await turn();
    expect(listener.acquired.filter((channel) => channel === 'a')).toEqual(['a', 'a']);
    expect(one.got('listened')).toEqual([{ t: 'listened', id: 1, snapshot: snapshot('Ea', 5) }]);
    expect(two.got('listened')).toEqual([{ t: 'listened', id: 1, snapshot: snapshot('Ea', 5) }]);
  });

  test('releases one LISTEN per unlisten, and none for a channel the worker does not hold', async () => {
    const { listener, positions, logs, worker } = startPrimary();
    positions.set('a', { epoch: 'Ea', seq: 0 });
    const w = worker(1);
    w.say({ t: 'listen', id: 1, channel: 'a' });
    await turn();
    w.say({ t: 'unlisten', channel: 'a' });
    w.say({ t: 'unlisten', channel: 'a' });
    w.say({ t: 'unlisten', channel: 'never' });
    expect(listener.released).toEqual(['a']);
    expect(logs.filter((line) => line.includes('worker released a channel it does not hold'))).toHaveLength(2);
  });

  test('answers a refused listen with the error, and with max_channels when the limit refused it', async () => {
    const { listener, worker } = startPrimary();
    listener.refuse('full', new ChannelLimitError(3));
    listener.refuse('broken', new Error('LISTEN failed'));
    const w = worker(1);
    w.say({ t: 'listen', id: 1, channel: 'full' });
    w.say({ t: 'listen', id: 2, channel: 'broken' });
    await turn();
    expect(w.got('listened')).toEqual([
      { t: 'listened', id: 1, error: new ChannelLimitError(3).message, maxChannels: 3 },
      { t: 'listened', id: 2, error: 'LISTEN failed' },
    ]);
  });

  test("forwards one read's deliveries as one batch per worker, to the workers that follow the channel only", async () => {
    const { cluster, positions, worker } = startPrimary(['history']);
    for (const channel of ['a', 'b', 'history']) positions.set(channel, { epoch: `E${channel}`, seq: 0 });
    const [one, two, idle] = [worker(1), worker(2), worker(3)];
    one.say({ t: 'listen', id: 1, channel: 'a' });
    two.say({ t: 'listen', id: 1, channel: 'b' });
    await turn();
    cluster.forward('a', 'a1', { epoch: 'Ea', seq: 1 });
    cluster.forward('b', 'b1', { epoch: 'Eb', seq: 1 });
    cluster.forward('history', 'h1', { epoch: 'Ehistory', seq: 1 });
    cluster.forward('a', 'a2', { epoch: 'Ea', seq: 2 });
    cluster.forward('nobody', 'n1', { epoch: 'En', seq: 1 });
    expect(one.got('deliver')).toEqual([]);
    await turn();
    expect(one.got('deliver')).toEqual([
      {
        t: 'deliver',
        batch: [
          ['a', 'a1', 'Ea', 1],
          ['history', 'h1', 'Ehistory', 1],
          ['a', 'a2', 'Ea', 2],
        ],
        bytes: expect.any(Number),
      },
    ]);
    expect(two.got('deliver')).toEqual([
      {
        t: 'deliver',
        batch: [
          ['b', 'b1', 'Eb', 1],
          ['history', 'h1', 'Ehistory', 1],
        ],
        bytes: expect.any(Number),
      },
    ]);
    expect(idle.got('deliver')).toEqual([
      { t: 'deliver', batch: [['history', 'h1', 'Ehistory', 1]], bytes: expect.any(Number) },
    ]);
  });

  test('never lets a control message overtake deliveries queued before it', async () => {
    const { cluster, positions, worker } = startPrimary();
    positions.set('a', { epoch: 'Ea', seq: 0 });
    const w = worker(1);
    w.say({ t: 'listen', id: 1, channel: 'a' });
    await turn();
    const before = w.inbox.length;
    cluster.forward('a', 'a1', { epoch: 'Ea', seq: 1 });
    cluster.probe(w.probe, 'canary');
    expect(w.inbox.slice(before)).toEqual([
      { t: 'deliver', batch: [['a', 'a1', 'Ea', 1]], bytes: expect.any(Number) },
      { t: 'probe', token: 'canary' },
    ]);
  });

  test('a worker that acknowledges what it is sent is never killed, however much passes through', async () => {
    const { cluster, positions, worker, stats } = startPrimary([], 0, 65_536);
    positions.set('a', { epoch: 'Ea', seq: 0 });
    const w = worker(1);
    w.say({ t: 'listen', id: 1, channel: 'a' });
    await turn();
    const frame = 'x'.repeat(10_000);
    for (let seq = 1; seq <= 100; seq++) {
      cluster.forward('a', frame, { epoch: 'Ea', seq });
      await turn();
      w.ack();
    }
    // A million bytes through a 64 KiB bound.
    expect(w.got('deliver').map((message) => message.batch[0]?.[3])).toEqual(
      Array.from({ length: 100 }, (_, i) => i + 1),
    );
    expect([w.killed, stats.workerRestarts.get('backlog')]).toEqual([[], undefined]);
  });

  test('a worker past worker_backlog_bytes unacknowledged is killed once, logged, counted and released, and sent nothing more', async () => {
    const { cluster, listener, positions, logs, worker, stats } = startPrimary([], 0, 65_536);
    positions.set('a', { epoch: 'Ea', seq: 0 });
    const [stuck, reading] = [worker(1), worker(2)];
    stuck.say({ t: 'listen', id: 1, channel: 'a' });
    reading.say({ t: 'listen', id: 1, channel: 'a' });
    await turn();
    const frame = 'x'.repeat(10_000);
    for (let seq = 1; seq <= 10; seq++) {
      cluster.forward('a', frame, { epoch: 'Ea', seq });
      await turn();
      reading.ack();
    }
    expect(stuck.killed).toEqual([1]);
    // Seven deliveries of about 10 kB pass 65,536 bytes; the eighth finds the bound passed and is not sent.
    expect(stuck.got('deliver')).toHaveLength(7);
    const lines = logs.filter((line) => line.includes('worker stopped reading its deliveries'));
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] ?? '{}')).toMatchObject({ level: 'error', worker: 1, limit: 65_536 });
    expect(JSON.parse(lines[0] ?? '{}').bytes).toBeGreaterThan(65_536);
    expect(listener.released.sort()).toEqual(['a', stuck.probe].sort());
    expect(stats.workerRestarts.get('backlog')).toBe(1);
    const sent = stuck.inbox.length;
    expect(cluster.probe(stuck.probe, 'canary')).toBe(false);
    // Its process exiting detaches it again (workers.ts): nothing more is released or counted.
    cluster.detach(stuck.link, 'exited');
    expect([stuck.inbox.length, stuck.killed, stats.workerRestarts.get('exited')]).toEqual([sent, [1], undefined]);
    expect(reading.got('deliver')).toHaveLength(10);
  });

  test('counts a worker that exits as restarted, and one detached at shutdown not at all', () => {
    const { cluster, worker, stats } = startPrimary();
    const [crashed, stopped] = [worker(1), worker(2)];
    cluster.detach(crashed.link, 'exited');
    cluster.detach(stopped.link);
    expect([...stats.workerRestarts]).toEqual([['exited', 1]]);
  });

  test("hands a notification on a worker's probe channel to that worker alone", async () => {
    const { cluster, worker } = startPrimary();
    const [one, two] = [worker(1), worker(2)];
    expect(cluster.probe(one.probe, 'for one')).toBe(true);
    expect(cluster.probe('somebody_else', 'for nobody')).toBe(false);
    expect(one.got('probe')).toEqual([{ t: 'probe', token: 'for one' }]);
    expect(two.got('probe')).toEqual([]);
  });

  test('releases every LISTEN and the probe of a worker that goes away, and sends it nothing more', async () => {
    const { cluster, listener, positions, worker } = startPrimary();
    for (const channel of ['a', 'b']) positions.set(channel, { epoch: `E${channel}`, seq: 0 });
    const [gone, stays] = [worker(1), worker(2)];
    gone.say({ t: 'listen', id: 1, channel: 'a' });
    gone.say({ t: 'listen', id: 2, channel: 'b' });
    stays.say({ t: 'listen', id: 1, channel: 'a' });
    await turn();
    const sent = gone.inbox.length;
    cluster.detach(gone.link);
    expect(listener.released.sort()).toEqual(['a', 'b', gone.probe].sort());
    cluster.forward('a', 'a1', { epoch: 'Ea', seq: 1 });
    expect(cluster.probe(gone.probe, 'late')).toBe(false);
    await turn();
    expect(gone.inbox.length).toBe(sent);
    expect(stays.got('deliver')).toHaveLength(1);
  });

  test('releases at once a LISTEN that completes after its worker went away', async () => {
    const { cluster, listener, positions, worker } = startPrimary();
    positions.set('slow', { epoch: 'Es', seq: 0 });
    const finish = listener.hold('slow');
    const w = worker(1);
    w.say({ t: 'listen', id: 1, channel: 'slow' });
    await turn();
    cluster.detach(w.link);
    expect(listener.released).toEqual([w.probe]);
    finish();
    await turn();
    expect(listener.released).toEqual([w.probe, 'slow']);
    expect(w.got('listened')).toEqual([]);
  });

  test('after a loss, tells each worker the epoch each of its channels starts', async () => {
    const { cluster, positions, worker } = startPrimary(['history']);
    for (const channel of ['a', 'b', 'history']) positions.set(channel, { epoch: `E${channel}`, seq: 0 });
    const [one, two] = [worker(1), worker(2)];
    one.say({ t: 'listen', id: 1, channel: 'a' });
    two.say({ t: 'listen', id: 1, channel: 'b' });
    await turn();
    for (const channel of ['a', 'b', 'history']) positions.set(channel, { epoch: `${channel} after`, seq: 0 });
    cluster.state('down');
    expect(one.inbox.at(-1)).toEqual({
      t: 'state',
      state: 'down',
      epochs: [
        ['history', 'history after'],
        ['a', 'a after'],
      ],
    });
    expect(two.inbox.at(-1)).toEqual({
      t: 'state',
      state: 'down',
      epochs: [
        ['history', 'history after'],
        ['b', 'b after'],
      ],
    });
  });

  test("gathers every process's metrics for a scrape, leaving out a worker that does not answer within 1 s", async () => {
    const { cluster, aggregated, clock, logs, worker } = startPrimary();
    const [quick, silent] = [worker(1), worker(2)];
    const text = cluster.scrape(true);
    await turn();
    const [asked] = quick.got('sample');
    expect(silent.got('sample')).toHaveLength(1);
    quick.say({ t: 'sampled', id: asked?.id ?? 0, metrics: 'the quick one' });
    clock.advance(999);
    await turn();
    expect(aggregated).toEqual([]);
    clock.advance(1);
    expect(await text).toBe('2 samples');
    expect(aggregated).toEqual([
      [
        [
          { worker: 0, metrics: 'the primary' },
          { worker: 1, metrics: 'the quick one' },
        ],
        true,
      ],
    ]);
    expect(logs.some((line) => line.includes('did not answer the metrics request in time'))).toBe(true);
  });

  test("answers a worker's scrape with the whole server's text once every worker has answered", async () => {
    const { aggregated, worker } = startPrimary();
    const [asking, other] = [worker(1), worker(2)];
    asking.say({ t: 'scrape', id: 9, byWorker: false });
    await turn();
    for (const w of [asking, other])
      w.say({ t: 'sampled', id: w.got('sample')[0]?.id ?? 0, metrics: `w${w.link.index}` });
    await turn();
    expect(asking.got('scraped')).toEqual([{ t: 'scraped', id: 9, text: '3 samples' }]);
    expect(aggregated.map(([samples, byWorker]) => [samples.map((s) => s.metrics), byWorker])).toEqual([
      [['the primary', 'w1', 'w2'], false],
    ]);
  });

  test("counts every worker's claims and its own connections against the instance's one limit, and gives a gone worker's back", () => {
    const { cluster, worker, slots } = startPrimary([], 3);
    const [one, two] = [worker(1), worker(2)];
    expect(slots.takeNow('alice')).toBe(true);
    one.say({ t: 'claim', id: 1, subject: 'alice' });
    two.say({ t: 'claim', id: 1, subject: 'alice' });
    two.say({ t: 'claim', id: 2, subject: 'alice' });
    one.say({ t: 'claim', id: 2, subject: 'bob' });
    expect(one.got('claimed')).toEqual([
      { t: 'claimed', id: 1, ok: true },
      { t: 'claimed', id: 2, ok: true },
    ]);
    expect(two.got('claimed')).toEqual([
      { t: 'claimed', id: 1, ok: true },
      { t: 'claimed', id: 2, ok: false },
    ]);
    two.say({ t: 'unclaim', subject: 'alice' });
    expect(slots.held('alice')).toBe(2);
    cluster.detach(one.link);
    expect([slots.held('alice'), slots.held('bob')]).toEqual([1, 0]);
  });

  test('hands a worker the revocations at its hello once they are current, and every cut-off to each worker', () => {
    const { cluster, worker, revocations } = startPrimary();
    const early = worker(1);
    expect(early.got('cutoff')).toEqual([]);
    const all: Cutoff = { kind: 'revocations', rows: [['alice', 1000]] };
    revocations.apply(all);
    cluster.cutoff(all);
    const late = worker(2);
    const disconnect: Cutoff = { kind: 'disconnect', subject: 'bob', reason: undefined };
    cluster.cutoff(disconnect);
    expect(early.got('cutoff').map((m) => m.cutoff)).toEqual([all, disconnect]);
    expect(late.got('cutoff').map((m) => m.cutoff)).toEqual([all, disconnect]);
  });
});
