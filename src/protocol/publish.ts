/**
 * Whether a multiplexed `publish` may go to PostgreSQL, and with which text: the rate bucket, the channel's
 * `publish` flag, the token's `w` grant, the schema, and NOTIFY's size limit, in that order. Pure: the
 * session sends what passes with `pg_notify($1, $2)`, and answers what does not with the reply given here.
 */
import { NOTIFY_MAX_BYTES } from '../base/notify.ts';
import type { PublishOutcome } from '../base/reasons.ts';
import type { Catalog } from '../channels/catalog.ts';
import { inexactNumberInField } from '../schema/json-numbers.ts';
import type { PublishFrame } from './frames.ts';
import type { ErrorReply } from './replies.ts';

/** The decision: the exact text to notify, or why not (the outcome to count and the error to send). */
export type PublishDecision =
  /** `large`: over NOTIFY's limit, so it goes through `pgws.notify` (stored, a reference notified). */
  | { readonly ok: true; readonly payload: string; readonly large: boolean }
  | {
      readonly ok: false;
      readonly outcome: Exclude<PublishOutcome, 'published'>;
      /** A token without `w`, as opposed to a channel that takes no publishes at all. */
      readonly unauthorized?: boolean;
      readonly reply: Omit<ErrorReply, 'id' | 'channel'>;
    };

/** What the decision reads. */
export interface PublishInput {
  readonly catalog: Pick<Catalog, 'hasSchema' | 'publishable' | 'validate'>;
  /** Took a token from the socket's rate bucket (refused frames count too). */
  readonly withinRate: boolean;
  readonly publishRate: number;
  /** `[server] max_payload_bytes`: the most the bridge fetches and sends. */
  readonly maxPayloadBytes: number;
  readonly mayWrite: boolean;
  readonly frame: PublishFrame;
  /** The frame's text, to check the payload's numbers for exactness. */
  readonly text: string;
}

/** Decides a publish. */
export function decidePublish(input: PublishInput): PublishDecision {
  const { catalog, frame } = input;
  const { channel } = frame;
  if (!input.withinRate) {
    const message = `more than ${input.publishRate} publishes a second`;
    return { ok: false, outcome: 'rate_limited', reply: { code: 'rate_limited', message } };
  }
  if (!catalog.publishable(channel)) {
    const message = `publishing on "${channel}" is not allowed`;
    return { ok: false, outcome: 'forbidden', reply: { code: 'forbidden', message } };
  }
  if (!input.mayWrite) {
    const message = `not allowed to publish on "${channel}"`;
    return { ok: false, outcome: 'forbidden', unauthorized: true, reply: { code: 'forbidden', message } };
  }
  let payload: string;
  if (catalog.hasSchema(channel)) {
    const inexact = inexactNumberInField(input.text, 'payload', frame.payload);
    const validated = catalog.validate(channel, frame.payload);
    if (inexact !== undefined || !validated.ok) {
      const issues = validated.ok
        ? [{ path: '', message: `number ${inexact?.slice(0, 40)} cannot be held exactly; send it as a string` }]
        : validated.issues;
      const message = 'the payload fails the channel schema';
      return { ok: false, outcome: 'invalid', reply: { code: 'invalid_payload', message, issues } };
    }
    payload = validated.json;
  } else if (typeof frame.payload === 'string') {
    payload = frame.payload;
  } else {
    const message = 'a channel without a schema takes a string payload';
    return {
      ok: false,
      outcome: 'invalid',
      reply: { code: 'invalid_payload', message, issues: [{ path: '', message }] },
    };
  }
  const bytes = Buffer.byteLength(payload);
  if (bytes > input.maxPayloadBytes) {
    const message = `the payload is ${bytes} bytes; this server takes at most ${input.maxPayloadBytes} (max_payload_bytes)`;
    return { ok: false, outcome: 'too_large', reply: { code: 'payload_too_large', message } };
  }
  return { ok: true, payload, large: bytes > NOTIFY_MAX_BYTES };
}
