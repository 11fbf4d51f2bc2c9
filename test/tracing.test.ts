/**
 * OpenTelemetry traces: off unless the standard environment asks, and then the spans of a notification, a
 * publish and a replay reach an OTLP/HTTP receiver started here, with their attributes and parents.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test';
import { ConfigError } from '../src/base/errors.ts';
import type { Spans } from '../src/base/trace.ts';
import { startTracing, type Tracing } from '../src/tracing.ts';
import { connect } from './client.ts';
import { startBridge, type TestBridge, uniqueChannel, within } from './harness.ts';
import { connectMux } from './mux.ts';
import { type ReceivedSpan, type Receiver, startReceiver } from './otlp.ts';

// Per file: bun:test's default timeout is per file, so test/setup.ts's call reaches only the first one.
setDefaultTimeout(60_000);

// W3C Trace Context's own example: the writer's trace and span.
const WRITER_TRACE = '0af7651916cd43dd8448eb211c80319c';
const WRITER_SPAN = 'b7ad6b7169203331';

describe('startTracing reads the standard environment', () => {
  test.each([
    ['nothing set', {}],
    ['OTEL_SDK_DISABLED=true', { OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }],
    [
      'OTEL_TRACES_EXPORTER=none',
      { OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' },
    ],
    ['only unrelated OTEL_ variables', { OTEL_SERVICE_NAME: 'bridge', OTEL_METRICS_EXPORTER: 'otlp' }],
  ])('traces are off with %s', async (_, env) => {
    expect(await startTracing(env, '0.0.0')).toBeUndefined();
  });

  test('an OTLP endpoint turns traces on, sending http/protobuf to its /v1/traces by default', async () => {
    const tracing = await startTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318/' }, '0.0.0');
    expect(tracing?.exporting).toBe('otlp http/protobuf http://127.0.0.1:4318/v1/traces');
    expect(tracing?.tracer.enabled).toBe(true);
    await tracing?.shutdown();
  });

  test.each([
    ['OTEL_EXPORTER_OTLP_PROTOCOL', { OTEL_TRACES_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }],
    ['OTEL_TRACES_EXPORTER', { OTEL_TRACES_EXPORTER: 'zipkin' }],
    ['OTEL_TRACES_SAMPLER', { OTEL_TRACES_EXPORTER: 'console', OTEL_TRACES_SAMPLER: 'sometimes' }],
    ['OTEL_BSP_SCHEDULE_DELAY', { OTEL_TRACES_EXPORTER: 'console', OTEL_BSP_SCHEDULE_DELAY: 'soon' }],
  ])('a value it cannot honour is a config error naming %s', async (name, env) => {
    const refused = startTracing(env, '0.0.0');
    await expect(refused).rejects.toBeInstanceOf(ConfigError);
    await expect(refused).rejects.toThrow(name);
  });
});

describe('spans reach an OTLP/HTTP receiver', () => {
  const [orders, chat] = [uniqueChannel('traced_orders'), uniqueChannel('traced_chat')];
  let receiver: Receiver;
  let tracing: Tracing;
  let t: TestBridge;
  beforeAll(async () => {
    receiver = startReceiver();
    const traced = await startTracing(
      {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_SERVICE_NAME: 'pgws-under-test',
        OTEL_BSP_SCHEDULE_DELAY: '50',
      },
      '0.0.0',
    );
    if (traced === undefined) throw new Error('tracing did not start');
    tracing = traced;
    t = await startBridge(
      `[channels."${orders}"]\nhistory = 10\npublish = true\n[channels."${orders}".schema]\ntype = "object"\nrequired = ["id"]\nproperties = { id = { type = "integer" } }\n[channels."${chat}"]\npublish = true\n`,
      { tracer: tracing.tracer },
    );
  });
  afterAll(async () => {
    await t.stop();
    await tracing.shutdown();
    await receiver[Symbol.asyncDispose]();
  });

  const on = (channel: string, name: keyof typeof Spans) => (span: ReceivedSpan) =>
    span.name === name && span.attributes['messaging.destination.name'] === channel;
  const childOf = (parent: ReceivedSpan, name: keyof typeof Spans) => (span: ReceivedSpan) =>
    span.name === name && span.parentSpanId === parent.spanId && span.traceId === parent.traceId;

  test('a notification is a span with channel, seq, subscribers reached and bytes, holding validate and fan-out', async () => {
    using plain = await connect(t.wsUrl(orders));
    using mux = await connectMux(t.url);
    await mux.subscribe(orders);
    const payload = '{"id":7,"note":"ünïcode"}';
    await t.notify(orders, payload);
    await mux.received(orders, 1);
    await plain.received(1);
    const span = await receiver.span(on(orders, 'pgws.notification'), 'the notification span');
    expect(span.attributes).toMatchObject({
      'messaging.destination.name': orders,
      'messaging.message.body.size': Buffer.byteLength(payload),
      'pgws.seq': 1,
      'pgws.subscribers': 2,
    });
    expect(span.service).toBe('pgws-under-test');
    const fanout = await receiver.span(childOf(span, 'pgws.fanout'), 'its fan-out span');
    expect(fanout.attributes).toMatchObject({ 'pgws.seq': 1, 'pgws.subscribers': 2 });
    await receiver.span(childOf(span, 'pgws.validate'), 'its validation span');
  });

  test('a payload that fails the schema is a failed notification span that reached nobody', async () => {
    await t.notify(orders, '{"id":"seven"}');
    const span = await receiver.span(
      (s) => on(orders, 'pgws.notification')(s) && s.attributes['pgws.dropped'] !== undefined,
      'the dropped notification span',
    );
    expect(span.attributes['pgws.dropped']).toBe('schema');
    expect(span.status.code).toBe(2); // OTLP STATUS_CODE_ERROR
  });

  test('a publish frame with a traceparent continues the writer trace, through pg_notify', async () => {
    using mux = await connectMux(t.url);
    const traceparent = `00-${WRITER_TRACE}-${WRITER_SPAN}-01`;
    const answer = await mux.request({ type: 'publish', channel: chat, payload: 'hello', traceparent });
    expect(answer.type).toBe('published');
    const span = await receiver.span(on(chat, 'pgws.publish'), 'the publish span');
    expect(span).toMatchObject({ traceId: WRITER_TRACE, parentSpanId: WRITER_SPAN });
    expect(span.attributes['pgws.outcome']).toBe('published');
    const query = await receiver.span(childOf(span, 'pgws.pg_notify'), 'its pg_notify span');
    expect(query.attributes).toMatchObject({ 'db.system.name': 'postgresql', 'db.operation.name': 'pg_notify' });
    expect(query.attributes['messaging.message.body.size']).toBe(5);
  });

  test('a refused publish is a failed span with its outcome, and a malformed traceparent starts a new trace', async () => {
    using mux = await connectMux(t.url);
    const answer = await mux.request({
      type: 'publish',
      channel: orders,
      payload: { id: 'x' },
      traceparent: 'nonsense',
    });
    expect(answer.code).toBe('invalid_payload');
    const span = await receiver.span(
      (s) => on(orders, 'pgws.publish')(s) && s.attributes['pgws.outcome'] === 'invalid',
      'the refused publish span',
    );
    expect(span.parentSpanId).toBe('');
    expect(span.traceId).not.toBe(WRITER_TRACE);
    expect(span.status.code).toBe(2);
  });

  test('a resume is a replay span saying whether it recovered and how many messages it sent', async () => {
    using first = await connectMux(t.url);
    const { epoch, seq } = await first.subscribe(orders);
    for (const id of [11, 12, 13]) await t.notify(orders, JSON.stringify({ id }));
    await first.received(orders, 3);
    using again = await connectMux(t.url);
    await again.subscribe(orders, { since: { epoch: String(epoch), seq: Number(seq) } });
    await again.received(orders, 3);
    const span = await receiver.span(
      (s) => on(orders, 'pgws.replay')(s) && s.attributes['pgws.since'] === seq,
      'the replay span',
    );
    expect(span.attributes).toMatchObject({ 'pgws.recovered': true, 'pgws.replayed': 3 });
  });
});

test('the default protocol, http/protobuf, reaches the receiver too', async () => {
  await using receiver = startReceiver();
  const tracing = await startTracing(
    { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY: '50' },
    '0.0.0',
  );
  if (tracing === undefined) throw new Error('tracing did not start');
  const channel = uniqueChannel('traced_proto');
  await using t = await startBridge('', { tracer: tracing.tracer });
  using plain = await connect(t.wsUrl(channel));
  await t.notify(channel, 'over protobuf');
  await plain.received(1);
  await within(tracing.shutdown(), 10_000, 'the spans to be flushed');
  const request = receiver.requests.find((r) => r.path === '/v1/traces');
  expect(request?.contentType).toBe('application/x-protobuf');
  // Protobuf keeps strings as their UTF-8 bytes: the span's name and channel are there as written.
  const text = new TextDecoder().decode(request?.body);
  expect(text).toContain('pgws.notification');
  expect(text).toContain(channel);
});
