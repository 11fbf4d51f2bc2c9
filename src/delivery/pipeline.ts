/**
 * The path of a notification from the LISTEN connection to the sockets: a reference is resolved to its
 * stored payload (in channel order, `channels/resolver.ts`), the payload is validated and encoded once
 * (`channels/catalog.ts`), an invalid one is dropped, counted and logged, and a valid frame is fanned out
 * (`fanout.ts`). In a worker, what the primary already numbered goes straight to the fan-out.
 *
 * The hot path is one `charCodeAt(0)` per notification, unless some channel is waiting for a fetch. With
 * tracing on, each notification is a `pgws.notification` span with `pgws.validate` and `pgws.fanout` inside
 * it; with tracing off the untraced functions are the ones built, so nothing is paid per notification.
 */
import type { Logger } from '../base/log.ts';
import type { ChannelStats, Stats } from '../base/stats.ts';
import { NO_TRACER, SpanKey, type Tracer, type TraceSpan } from '../base/trace.ts';
import type { Catalog, Encoded, PayloadIssue } from '../channels/catalog.ts';
import { type Fetched, MARKER_CODE } from '../channels/reference.ts';
import { createResolver } from '../channels/resolver.ts';
import type { Position } from '../protocol/history.ts';
import type { FanOut } from './fanout.ts';

/** Options of {@link createPipeline}. */
export interface PipelineOptions {
  catalog: Pick<Catalog, 'encode'>;
  stats: Stats;
  fanOut: FanOut;
  /** Fetches a stored payload (`pgws.notify`) on the query connection; never rejects. */
  fetch(id: string, channel: string): Promise<Fetched>;
  log: Logger;
  /** Told of every payload dropped as invalid (not JSON, or failing the schema), after it is counted. */
  onInvalid?: InvalidPayloadHook | undefined;
  /** Spans per notification when enabled (default: off). */
  tracer?: Tracer;
  /** The seq the hub gave a channel's latest message, for spans; undefined where nothing numbers it. */
  seqOf?(channel: string): number | undefined;
}

/**
 * Hears of a payload dropped as invalid: the text as delivered (a stored one once fetched) and what is wrong
 * with it. For embedders that show the drops, such as the test kit (`testing/`); the metrics count them anyway.
 */
export type InvalidPayloadHook = (channel: string, payload: string, issues: readonly PayloadIssue[]) => void;

/** Where notifications enter. */
export interface Pipeline {
  /** A notification as PostgreSQL delivered it, in commit order per channel. */
  notification(channel: string, payload: string): void;
  /**
   * A durable channel's row, read from the table (`durable.ts`): validated and fanned out like a notification,
   * at the position the database gave it.
   */
  stored(channel: string, payload: string, at: Position): void;
  /** A worker's: a notification the primary validated and numbered (`frame` is the plain-mode frame). */
  delivered(channel: string, frame: string, at: Position): void;
  /** The connection was lost: references still being fetched are given up with it. */
  reset(): void;
}

// A stored payload not fetched by then is dropped as reference_failed, so one channel never stalls.
const FETCH_TIMEOUT_MS = 10_000;

/** Creates the pipeline of one process. */
export function createPipeline(options: PipelineOptions): Pipeline {
  const { catalog, stats, fanOut, log } = options;

  const dropInvalid = (
    channel: string,
    payload: string,
    encoded: Extract<Encoded, { ok: false }>,
    counters: ChannelStats,
  ) => {
    if (encoded.reason === 'json') counters.invalidJson += 1;
    else counters.invalidSchema += 1;
    log.warn('invalid payload dropped', {
      channel,
      reason: encoded.reason,
      issues: encoded.issues,
      prefix: payload.slice(0, 64),
    });
    options.onInvalid?.(channel, payload, encoded.issues);
  };
  /** One notification with its payload in hand: encoded once, then fanned out, or dropped as invalid. */
  const untraced = (channel: string, payload: string, counters = stats.channel(channel), at?: Position) => {
    const encoded = catalog.encode(channel, payload);
    if (encoded.ok) return fanOut(channel, encoded.frame, counters, at);
    dropInvalid(channel, payload, encoded, counters);
  };
  const tracer = options.tracer ?? NO_TRACER;
  const seqOf = options.seqOf ?? (() => undefined);
  const notificationSpan = (channel: string, text: string) =>
    tracer.start('pgws.notification', { [SpanKey.channel]: channel, [SpanKey.bytes]: Buffer.byteLength(text) });
  /** The fan-out as a `pgws.fanout` span inside `span`, which ends with it. */
  const fanOutIn = (span: TraceSpan, channel: string, frame: string, counters: ChannelStats, at?: Position) => {
    const fanning = span.child('pgws.fanout', { [SpanKey.channel]: channel });
    const before = counters.delivered;
    fanOut(channel, frame, counters, at);
    const seq = at?.seq ?? seqOf(channel);
    const reached = {
      [SpanKey.subscribers]: counters.delivered - before,
      ...(seq === undefined ? {} : { [SpanKey.seq]: seq }),
    };
    fanning.set(reached);
    fanning.end();
    span.set(reached);
    span.end();
  };
  /** `untraced` as a `pgws.notification` span holding a `pgws.validate` and a `pgws.fanout` span. */
  const traced = (channel: string, payload: string, counters = stats.channel(channel), at?: Position) => {
    const span = notificationSpan(channel, payload);
    const validation = span.child('pgws.validate', { [SpanKey.channel]: channel });
    const encoded = catalog.encode(channel, payload);
    if (!encoded.ok) validation.fail(encoded.reason);
    validation.end();
    if (encoded.ok) return fanOutIn(span, channel, encoded.frame, counters, at);
    span.set({ 'pgws.dropped': encoded.reason });
    span.fail(`invalid payload (${encoded.reason})`);
    span.end();
    dropInvalid(channel, payload, encoded, counters);
  };
  const deliver = tracer.enabled ? traced : untraced;
  const references = createResolver({
    fetch: options.fetch,
    deliver,
    drop(channel, reason, detail) {
      stats.channel(channel).invalidReference[reason] += 1;
      // Never the content: a reference's row may hold what the channel's clients alone should see.
      log.warn('reference dropped', { channel, reason, ...detail });
    },
    failed: (error) => log.error('delivery failed', { error }),
    timeoutMs: FETCH_TIMEOUT_MS,
  });

  return {
    notification(channel, payload) {
      const counters = stats.channel(channel);
      counters.received += 1;
      if (payload.charCodeAt(0) === MARKER_CODE || references.busy !== 0) return references.accept(channel, payload);
      deliver(channel, payload, counters);
    },
    stored(channel, payload, at) {
      const counters = stats.channel(channel);
      counters.received += 1;
      deliver(channel, payload, counters, at);
    },
    // A worker's: the primary validated it, so its span holds only the fan-out.
    delivered: tracer.enabled
      ? (channel, frame, at) => fanOutIn(notificationSpan(channel, frame), channel, frame, stats.channel(channel), at)
      : (channel, frame, at) => fanOut(channel, frame, stats.channel(channel), at),
    reset: () => references.reset(),
  };
}
