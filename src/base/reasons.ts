/**
 * Why something did not go through, as an operator counts it: the label sets of
 * `pgws_notifications_invalid_total` (references), `pgws_publishes_total`, `pgws_auth_failures_total`,
 * `pgws_subject_cutoffs_total`, `pgws_revocation_refusals_total` and `pgws_worker_restarts_total`.
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
export type AuthFailure = 'missing' | 'invalid' | 'expired' | 'revoked' | 'forbidden' | 'origin';

/** Why open connections were cut off (closed with 4403): the `reason` in `pgws_subject_cutoffs_total`. */
export const CutoffReasons = {
  disconnect: "`pgws.disconnect` closed the subject's connections",
  revoke: '`pgws.revoke` revoked the token a connection was using',
} as const;

/** One of {@link CutoffReasons}. */
export type CutoffReason = keyof typeof CutoffReasons;

/** Why a token was refused as revoked: the `reason` in `pgws_revocation_refusals_total`. */
export const RevocationRefusals = {
  issued_before: "the token's `iat` is before the `before` of its subject's revocation",
  no_iat: 'the token has no `iat`, and its subject is revoked',
} as const;

/** One of {@link RevocationRefusals}. */
export type RevocationRefusal = keyof typeof RevocationRefusals;

/** Why the primary started a worker again (`[server] workers > 1`): the `reason` in `pgws_worker_restarts_total`. */
export const WorkerRestartReasons = {
  exited: 'the worker exited without being asked to (a crash, the OOM killer, a signal from outside)',
  backlog:
    'the worker left more than `[server] worker_backlog_bytes` of deliveries unacknowledged (it stopped reading), so the primary killed it',
} as const;

/** One of {@link WorkerRestartReasons}. */
export type WorkerRestartReason = keyof typeof WorkerRestartReasons;
