/**
 * A multiplexed `publish` frame's way to PostgreSQL: the socket's rate bucket, the decision of `publish.ts`,
 * the query (`pg_notify($1, $2)`, `pgws.notify` over NOTIFY's limit, `pgws.send` on a durable channel, whose
 * answer carries the seq), and the answer: `published` once
 * PostgreSQL has returned, or an `error` frame. Each outcome is counted once, in `pgws_publishes_total`.
 *
 * With tracing on, a publish is a `pgws.publish` span (continuing the writer's trace when the frame carries
 * a W3C `traceparent`) holding a `pgws.pg_notify` span for the query; with tracing off none is built.
 */
import type { Logger } from '../base/log.ts';
import { NOTIFY_MAX_BYTES } from '../base/notify.ts';
import type { PublishOutcome } from '../base/reasons.ts';
import type { Stats } from '../base/stats.ts';
import { SpanKey, type Tracer, type TraceSpan } from '../base/trace.ts';
import type { Catalog } from '../channels/catalog.ts';
import type { Listener } from '../db/listener.ts';
import type { Queries } from '../db/queries.ts';
import type { PublishFrame } from './frames.ts';
import { decidePublish } from './publish.ts';
import { createBucket } from './rate.ts';
import { type ErrorReply, encodeError, encodePublished } from './replies.ts';
import type { Peer, SessionState } from './state.ts';

/** What publishing needs from the rest of the bridge. */
export interface PublisherOptions {
  catalog: Pick<Catalog, 'hasSchema' | 'publishable' | 'validate' | 'durable'>;
  listener: Pick<Listener, 'state'> & { readonly queries: Pick<Queries, 'publish' | 'publishLarge' | 'send'> };
  limits: { readonly publishRate: number; readonly maxPayloadBytes: number };
  stats: Stats;
  log: Logger;
  /** The permission check for writing a channel (`w`). */
  mayWrite: (state: SessionState, channel: string) => boolean;
  tracer: Tracer;
}

/** Handles one publish frame; resolves once it is answered. */
export type Publisher = (peer: Peer, state: SessionState, frame: PublishFrame, text: string) => Promise<void>;

/** Creates the publisher of every multiplexed socket of one bridge. */
export function createPublisher(options: PublisherOptions): Publisher {
  const { catalog, listener, limits, stats, tracer } = options;

  /** Returns the outcome the publish was counted as. */
  async function publish(
    peer: Peer,
    state: SessionState,
    frame: PublishFrame,
    text: string,
    span: TraceSpan | undefined,
  ): Promise<PublishOutcome> {
    const { id, channel } = frame;
    state.bucket ??= createBucket(limits.publishRate);
    const decision = decidePublish({
      catalog,
      withinRate: state.bucket.take(),
      publishRate: limits.publishRate,
      maxPayloadBytes: limits.maxPayloadBytes,
      mayWrite: options.mayWrite(state, channel),
      frame,
      text,
    });
    const refuse = (outcome: PublishOutcome, reply: Omit<ErrorReply, 'id' | 'channel'>) => {
      stats.publish(outcome, state.transport);
      peer.send(encodeError({ id, channel, ...reply }));
      return outcome;
    };
    if (!decision.ok) {
      if (decision.unauthorized) stats.authFailure('forbidden');
      return refuse(decision.outcome, decision.reply);
    }
    if (listener.state !== 'up') {
      return refuse('unavailable', { code: 'unavailable', message: 'database connection is down; retry shortly' });
    }
    const durable = catalog.durable(channel);
    const query = span?.child('pgws.pg_notify', {
      'db.system.name': 'postgresql',
      'db.operation.name': durable ? 'pgws.send' : decision.large ? 'pgws.notify' : 'pg_notify',
      [SpanKey.bytes]: Buffer.byteLength(decision.payload),
    });
    let seq: number | undefined;
    try {
      // docs/PROTOCOL.md "Durable channels": a publish on one is a row, numbered by pgws.send, of any size.
      if (durable) {
        const sent = await listener.queries.send(channel, decision.payload);
        if (!sent.ok && sent.reason === 'failed') throw sent.error;
        if (!sent.ok) {
          options.log.error('publish on a durable channel failed: pgws.send is missing or not allowed', { channel });
          return refuse('unavailable', { code: 'unavailable', message: 'pgws.send is not available; run bun run sql' });
        }
        seq = sent.value;
      } else if (!decision.large) await listener.queries.publish(channel, decision.payload);
      else if (!(await listener.queries.publishLarge(channel, decision.payload))) {
        const message = `the payload is ${Buffer.byteLength(decision.payload)} bytes; PostgreSQL's NOTIFY takes at most ${NOTIFY_MAX_BYTES}, and pgws.notify (bun run sql) is not installed`;
        return refuse('too_large', { code: 'payload_too_large', message });
      }
    } catch (error) {
      query?.fail('query failed');
      options.log.warn('publish failed', { channel, error });
      return refuse('unavailable', { code: 'unavailable', message: 'the database did not take the publish; retry' });
    } finally {
      query?.end();
    }
    stats.publish('published', state.transport);
    if (!state.closed) peer.send(encodePublished(channel, id, seq));
    return 'published';
  }

  if (!tracer.enabled)
    return async (peer, state, frame, text) => void (await publish(peer, state, frame, text, undefined));
  return async (peer, state, frame, text) => {
    const span = tracer.start('pgws.publish', { [SpanKey.channel]: frame.channel }, frame.traceparent);
    try {
      const outcome = await publish(peer, state, frame, text, span);
      span.set({ 'pgws.outcome': outcome });
      if (outcome !== 'published') span.fail(outcome);
    } finally {
      span.end();
    }
  };
}
