/**
 * PostgreSQL's own limit on a NOTIFY payload, the one number the bridge, the SQL it hands out and the
 * publish decision share: PG's NOTIFY_PAYLOAD_MAX_LENGTH (8000) is exclusive and counted in bytes, so a
 * payload of 7999 bytes is the largest `pg_notify` takes; anything larger fails the writer's transaction
 * with `payload string too long` unless it goes through `pgws.notify`.
 */
export const NOTIFY_MAX_BYTES = 7999;
