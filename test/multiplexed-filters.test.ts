/**
 * Acceptance tests of `pgws.v1` subscription filters over real sockets: every operator, dot paths,
 * missing paths, deep equality, several filters on one channel, replay through a filter, and the
 * filters refused with bad_request.
 *
 * To show that a payload does NOT arrive, every case sends the five payloads twice: the first match of
 * the second round arrives after everything of the first, so once it is in, the first round is complete.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { metric, startBridge, type TestBridge, uniqueChannel } from './harness.ts';
import { connectMux, type MuxClient } from './mux.ts';

// Here, not only in test/setup.ts: bun:test's setDefaultTimeout is per file, and the preload's reaches only the first.
setDefaultTimeout(60_000);

const PAYLOADS = [
  { id: 1, status: 'paid', total: 120, customer: { id: 7, tier: 'gold' }, tags: ['a', 'b'], name: 'apple' },
  { id: 2, status: 'open', total: 40, customer: { id: 8 }, tags: ['b'], name: 'banana' },
  { id: 3, status: 'paid', total: 99.5, customer: { id: 7 }, tags: [], coupon: 'X', name: 'cherry' },
  { id: 4, status: 'void', total: 'n/a', tags: ['a', 'b'], name: 'date' },
  { id: 5, status: null, total: 0, customer: { id: '7' }, tags: ['b', 'a'], name: 'Apple' },
] as const;

const CASES: readonly (readonly [string, unknown, readonly number[]])[] = [
  ['a scalar shorthand', { status: 'paid' }, [1, 3]],
  ['eq', { status: { eq: 'paid' } }, [1, 3]],
  ['eq null (a present null)', { status: { eq: null } }, [5]],
  ['neq', { status: { neq: 'paid' } }, [2, 4, 5]],
  ['in', { status: { in: ['open', 'void'] } }, [2, 4]],
  ['nin', { status: { nin: ['paid', 'open'] } }, [4, 5]],
  ['lt on numbers (a string total never matches)', { total: { lt: 99.5 } }, [2, 5]],
  ['lte on numbers', { total: { lte: 99.5 } }, [2, 3, 5]],
  ['gt on numbers', { total: { gt: 40 } }, [1, 3]],
  ['gte on numbers', { total: { gte: 40 } }, [1, 2, 3]],
  ['lt on strings', { name: { lt: 'banana' } }, [1, 5]],
  ['gt with a string operand (number totals never match)', { total: { gt: 'a' } }, [4]],
  ['a dot path with a number', { 'customer.id': 7 }, [1, 3]],
  ['a dot path with a string (types are not coerced)', { 'customer.id': '7' }, [5]],
  ['a dot path with gte', { 'customer.id': { gte: 8 } }, [2]],
  ['eq on a path some payloads lack', { 'customer.tier': 'gold' }, [1]],
  ['neq on a path some payloads lack (missing matches)', { 'customer.tier': { neq: 'gold' } }, [2, 3, 4, 5]],
  ['in on a path some payloads lack', { coupon: { in: ['X', 'Y'] } }, [3]],
  ['nin on a path some payloads lack (missing matches)', { coupon: { nin: ['X'] } }, [1, 2, 4, 5]],
  ['an array shorthand (deep equality, order matters)', { tags: ['a', 'b'] }, [1, 4]],
  ['eq with an array', { tags: { eq: ['b'] } }, [2]],
  ['eq with an object (deep equality, no extra keys)', { customer: { eq: { id: 7 } } }, [3]],
  ['in with arrays', { tags: { in: [['b'], []] } }, [2, 3]],
  ['several conditions (all must hold)', { status: 'paid', 'customer.id': 7, total: { gt: 100 } }, [1]],
];

let t: TestBridge;
const SCHEMA = 'type = "object"\nrequired = ["id"]\nproperties = { id = { type = "integer" } }\n';
const channels = new Map(CASES.map(([name]) => [name, uniqueChannel('flt')]));
const [shared, replayed, raw] = [uniqueChannel('flt'), uniqueChannel('flt_hist'), uniqueChannel('flt_raw')];

beforeAll(async () => {
  const declare = (name: string, history = 0) =>
    `[channels."${name}"]\nhistory = ${history}\n[channels."${name}".schema]\n${SCHEMA}`;
  t = await startBridge(
    [...channels.values(), shared].map((c) => declare(c)).join('') + declare(replayed, 100) + `[channels."${raw}"]\n`,
  );
});
afterAll(() => t.stop());

/** Sends the five payloads in two rounds, each payload marked with its round. */
async function sendRounds(channel: string) {
  for (const round of [1, 2])
    for (const payload of PAYLOADS) await t.notify(channel, JSON.stringify({ ...payload, round }));
}

/** Checks that `client`, subscribed at `base`, got exactly `ids` of round 1 and then the first of round 2. */
async function expectOnly(client: MuxClient, channel: string, base: number, ids: readonly number[]) {
  const first = ids[0] ?? 0;
  const message = (id: number, round: number) => ({
    type: 'message',
    channel,
    seq: base + (round - 1) * PAYLOADS.length + id,
    payload: { ...PAYLOADS[id - 1], round },
  });
  expect(await client.received(channel, ids.length + 1)).toEqual([
    ...ids.map((id) => message(id, 1)),
    message(first, 2),
  ]);
}

describe('filters', () => {
  test.each(CASES)(
    'a filter with %s delivers only the matching payloads, with seq skipping the others',
    async (name, filter, ids) => {
      const channel = channels.get(name) ?? '';
      using client = await connectMux(t.url);
      const { seq } = await client.subscribe(channel, { filter });
      await sendRounds(channel);
      await expectOnly(client, channel, seq ?? 0, ids);
    },
  );

  test('two subscribers with different filters on one channel each get only their own matches', async () => {
    using paid = await connectMux(t.url);
    using open = await connectMux(t.url);
    const { seq } = await paid.subscribe(shared, { filter: { status: 'paid' } });
    await open.subscribe(shared, { filter: { status: { in: ['open'] } } });
    await sendRounds(shared);
    await expectOnly(paid, shared, seq ?? 0, [1, 3]);
    await expectOnly(open, shared, seq ?? 0, [2]);
  });

  test('a replay applies the filter, and recovered stays true', async () => {
    using watcher = await connectMux(t.url);
    const { epoch, seq } = await watcher.subscribe(replayed);
    for (const payload of PAYLOADS) await t.notify(replayed, JSON.stringify({ ...payload, round: 1 }));
    await watcher.received(replayed, PAYLOADS.length);
    using client = await connectMux(t.url);
    const since = { epoch: epoch ?? '', seq: seq ?? 0 };
    expect(await client.subscribe(replayed, { since, filter: { status: 'paid' } })).toMatchObject({
      recovered: true,
      seq,
    });
    for (const payload of PAYLOADS) await t.notify(replayed, JSON.stringify({ ...payload, round: 2 }));
    await expectOnly(client, replayed, seq ?? 0, [1, 3]);
  });

  test('subscribers with equal filters, however written, share one filter topic', async () => {
    const before = await metric(t.url, 'pgws_filter_topics');
    using one = await connectMux(t.url);
    using two = await connectMux(t.url);
    using three = await connectMux(t.url);
    await one.subscribe(shared, { filter: { 'customer.id': 7, status: 'paid' } });
    await two.subscribe(shared, { filter: { status: { eq: 'paid' }, 'customer.id': { eq: 7 } } });
    expect(await metric(t.url, 'pgws_filter_topics')).toBe(before + 1);
    await three.subscribe(shared, { filter: { status: 'open' } });
    expect(await metric(t.url, 'pgws_filter_topics')).toBe(before + 2);
  });
});

describe('filters refused', () => {
  test.each<[string, unknown]>([
    ['a number', 5],
    ['a string', 'status = paid'],
    ['an array', [{ status: 'paid' }]],
    ['null', null],
    ['an object that is not an operator (compare objects through eq)', { customer: { id: 7 } }],
    ['an unknown operator', { status: { like: 'p%' } }],
    ['two operators in one condition', { total: { gt: 1, lt: 5 } }],
    ['in with a scalar', { status: { in: 'paid' } }],
    ['nin with an object', { status: { nin: { a: 1 } } }],
    ['lt with a boolean (X must be a number or a string)', { total: { lt: true } }],
    ['gte with an array', { total: { gte: [1] } }],
  ])('a filter that is %s is bad_request, and the socket can subscribe after it', async (_, filter) => {
    using client = await connectMux(t.url);
    const answer = await client.request({ type: 'subscribe', id: 'f', channel: shared, filter });
    expect(answer).toMatchObject({ type: 'error', id: 'f', code: 'bad_request' });
    await client.subscribe(shared, { filter: { status: 'paid' } });
  });

  test.each([
    ['a declared channel without a schema', raw],
    ['an undeclared channel', uniqueChannel('flt_undeclared')],
  ])('a filter on %s is bad_request', async (_, channel) => {
    using client = await connectMux(t.url);
    const answer = await client.request({ type: 'subscribe', id: 'r', channel, filter: { a: 1 } });
    expect(answer).toMatchObject({ type: 'error', id: 'r', code: 'bad_request' });
    await client.subscribe(channel);
  });
});
