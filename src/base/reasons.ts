/**
 * Why something did not go through, as an operator counts it: the label sets of
 * `pgws_notifications_invalid_total` (references), `pgws_publishes_total` and `pgws_auth_failures_total`.
 * A leaf, so the layer that decides and the exporter that counts share one spelling.
 */

/** Why a notification that carries a reference is dropped: the `reason` in `pgws_notifications_invalid_total`. */
export const ReferenceProblems = {
  reference_malformed: 'a payload starting with the reference marker whose id is not a UUID',
  reference_forged: 'a reference to a stored payload of another channel (sent with pg_notify on the wrong channel)',
  reference_missing: 'a reference to a stored payload that does not exist, or expired (large_payload_ttl)',
  too_large: 'a stored payload over [server] max_payload_bytes (never fetched)',
  reference_failed: 'the fetch of a stored payload failed, or did not answer within 10 s (database trouble)',
} as const;

/** One of {@link ReferenceProblems}. */
export type ReferenceProblem = keyof typeof ReferenceProblems;

/** Publish outcomes, as counted in `pgws_publishes_total`. */
export type PublishOutcome = 'published' | 'invalid' | 'forbidden' | 'rate_limited' | 'too_large' | 'unavailable';

/** Why a token or an origin was refused, as counted in `pgws_auth_failures_total`. */
export type AuthFailure = 'missing' | 'invalid' | 'expired' | 'forbidden' | 'origin';
