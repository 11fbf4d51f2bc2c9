/**
 * Tracing as the bridge's layers see it: a span with attributes, children and an end, and a tracer that
 * starts one, optionally continuing a W3C `traceparent`. The OpenTelemetry SDK behind it is wired only at
 * the top (`../tracing.ts`); everything below calls this interface and never imports OpenTelemetry.
 *
 * Off costs nothing: `enabled` is read once, when a pipeline or a session is built, and with tracing off
 * they keep their untraced functions, so no span, attribute object or clock read happens per message.
 */

/** A span's attributes: OpenTelemetry's primitive values. Never a payload, a token or a secret. */
export type SpanAttributes = Readonly<Record<string, string | number | boolean>>;

/**
 * Every span the bridge makes, with what it covers and its attributes. The README's table is checked
 * against this one (`test/readme.test.ts`), so a span is added here or nowhere.
 */
export const Spans = {
  'pgws.notification': {
    kind: 'consumer',
    covers:
      "a notification from its arrival on the LISTEN connection (or from a worker's primary) to the last socket it was written to",
    attributes:
      'channel, bytes, seq (when multiplexed subscribers or history number it), subscribers reached, `pgws.dropped` (`json`, `schema`) when invalid',
  },
  'pgws.validate': {
    kind: 'internal',
    covers: "inside `pgws.notification`: the payload parsed and checked against the channel's schema, and encoded once",
    attributes: 'channel',
  },
  'pgws.fanout': {
    kind: 'internal',
    covers:
      'inside `pgws.notification`: the frame written to every plain and multiplexed socket of the process (and forwarded to the workers)',
    attributes: 'channel, seq, subscribers reached',
  },
  'pgws.publish': {
    kind: 'producer',
    covers:
      'a multiplexed `publish` frame, from its arrival to the answer; continues the trace of a `traceparent` field in the frame',
    attributes: 'channel, bytes, `pgws.outcome` (`published` or the refusal, as in `pgws_publishes_total`)',
  },
  'pgws.pg_notify': {
    kind: 'client',
    covers:
      'inside `pgws.publish`: the query that hands the payload to PostgreSQL (`pg_notify`, or `pgws.notify` over 7999 bytes)',
    attributes: '`db.system.name` (`postgresql`), `db.operation.name`, bytes',
  },
  'pgws.replay': {
    kind: 'internal',
    covers:
      'a subscribe with `since`: the resume decision and, when recovered, the missed messages sent (across drains) until the subscription is live',
    attributes: 'channel, `pgws.since` (the seq resumed from), `pgws.recovered`, `pgws.replayed` (messages sent)',
  },
} as const satisfies Readonly<Record<string, { kind: SpanKind; covers: string; attributes: string }>>;

/** The name of one of the bridge's spans. */
export type SpanName = keyof typeof Spans;

/** The attribute keys the spans share: OpenTelemetry's messaging conventions where one fits, ours beside them. */
export const SpanKey = {
  channel: 'messaging.destination.name',
  bytes: 'messaging.message.body.size',
  seq: 'pgws.seq',
  subscribers: 'pgws.subscribers',
} as const;

/** OpenTelemetry's span kinds that the bridge uses. */
export type SpanKind = 'internal' | 'producer' | 'consumer' | 'client';

/** One span, started by a {@link Tracer} or as a child of another span. */
export interface TraceSpan {
  /** Adds attributes; a later value of a key replaces an earlier one. */
  set(attributes: SpanAttributes): void;
  /** Marks the span failed with a short reason (an outcome label, never client data). */
  fail(reason: string): void;
  /** Starts a span inside this one, in the same trace. */
  child(name: SpanName, attributes?: SpanAttributes): TraceSpan;
  /** Ends the span; later calls do nothing. */
  end(): void;
}

/** Starts spans; handed down from the composition root. */
export interface Tracer {
  /** False when tracing is off: callers then build no span at all. */
  readonly enabled: boolean;
  /**
   * Starts a span. With a `traceparent` (W3C Trace Context), the span continues that trace as a child of
   * the writer's span; a malformed one is ignored and a new trace starts, as the W3C rules ask.
   */
  start(name: SpanName, attributes?: SpanAttributes, traceparent?: string): TraceSpan;
}

const NO_SPAN: TraceSpan = {
  set() {},
  fail() {},
  child: () => NO_SPAN,
  end() {},
};

/** Tracing off: the default everywhere. */
export const NO_TRACER: Tracer = { enabled: false, start: () => NO_SPAN };
