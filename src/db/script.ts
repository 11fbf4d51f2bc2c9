/**
 * The SQL that `bun run sql` prints: schema `pgws` with `pgws.notify(channel, payload)`, NOTIFY for
 * payloads of any size. Pure text, also run by the tests and the benchmark, so what they exercise is
 * exactly what a user installs.
 *
 * One statement (a DO block): atomic under psql's autocommit, inside a migration's transaction, or as
 * one multi-statement query, and serialised by an advisory lock, so concurrent installs wait for each
 * other instead of colliding in the catalogs. Every part is idempotent; grants are set only when the
 * schema is first created, so a re-run keeps whatever an administrator changed since.
 */
import { NOTIFY_MAX_BYTES } from '../base/notify.ts';
import { MARKER } from '../channels/reference.ts';

/** The schema the script creates; the bridge reads `payloads` in it. */
export const SCHEMA = 'pgws';

// PG: NOTIFY refuses a payload of this many bytes or more (NOTIFY_PAYLOAD_MAX_LENGTH, default build).
const NOTIFY_LIMIT_BYTES = NOTIFY_MAX_BYTES + 1;

// 'pgws' in ASCII: a key no other application is likely to pick.
const INSTALL_LOCK = 0x70677773;
const marker = `chr(${MARKER.charCodeAt(0)}) || '${MARKER.slice(1)}'`;

/** The install script, ready to print or run. */
export const INSTALL_SQL = `-- pg-notify-ws: pgws.notify(channel, payload), NOTIFY for payloads of any size.
--
-- Plain SQL, one statement: run it with psql (bun run sql | psql "$DATABASE_URL"), in a migration, or as
-- one query. Idempotent: running it again upgrades in place and keeps grants changed since. Needs no
-- superuser: the role that runs it needs CREATE on the database, and owns what it creates.
--
-- pgws.notify(channel, payload) sends a payload under ${NOTIFY_LIMIT_BYTES} bytes (NOTIFY's limit, in bytes) with
-- pg_notify as it is. A larger one (or one starting with the reference marker) is stored in
-- pgws.payloads and a reference, chr(${MARKER.charCodeAt(0)}) || '${MARKER.slice(1)}' || the row's UUID, is notified on the same
-- channel instead. The bridge fetches the row once per notification and deletes rows older than its
-- [database] large_payload_ttl.
--
-- Privileges: pgws.notify is SECURITY DEFINER, so a writer needs only EXECUTE on it (granted to PUBLIC at
-- the first install, as anyone may call pg_notify); only the owner can read the table. A bridge that
-- does not connect as the owner needs:
--   GRANT SELECT, DELETE ON pgws.payloads TO bridge_role;
DO $install$
DECLARE
  fresh boolean;
BEGIN
  PERFORM pg_advisory_xact_lock(${INSTALL_LOCK});
  fresh := to_regnamespace('${SCHEMA}') IS NULL;
  IF fresh THEN
    CREATE SCHEMA ${SCHEMA};
  END IF;

  -- UNLOGGED: a stored payload lives seconds and means nothing without its notification, which
  -- PostgreSQL does not keep across a crash either; skipping the WAL halves the cost of writing it.
  CREATE UNLOGGED TABLE IF NOT EXISTS ${SCHEMA}.payloads (
    id uuid PRIMARY KEY,
    channel text NOT NULL,
    payload text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
  );
  CREATE INDEX IF NOT EXISTS payloads_created_at ON ${SCHEMA}.payloads (created_at);
  COMMENT ON TABLE ${SCHEMA}.payloads IS
    'pg-notify-ws: payloads too large for NOTIFY, each referenced by one notification; the bridge deletes rows older than its [database] large_payload_ttl';

  CREATE OR REPLACE FUNCTION ${SCHEMA}.notify(channel text, payload text) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    -- Pinned: a caller's search_path must not decide what a SECURITY DEFINER function resolves.
    SET search_path = pg_catalog, pg_temp
  AS $notify$
  DECLARE
    stored uuid;
  BEGIN
    payload := coalesce(payload, '');
    -- octet_length: NOTIFY's limit is in bytes. A small payload that starts with the marker is stored
    -- too, so that it reaches clients as it was sent rather than being taken for a reference.
    IF octet_length(payload) < ${NOTIFY_LIMIT_BYTES} AND NOT starts_with(payload, ${marker}) THEN
      PERFORM pg_notify(channel, payload);
      RETURN;
    END IF;
    stored := gen_random_uuid();
    -- First, so a bad channel name fails with pg_notify's own message (the row goes with the rollback).
    PERFORM pg_notify(channel, ${marker} || stored::text);
    INSERT INTO ${SCHEMA}.payloads (id, channel, payload) VALUES (stored, notify.channel, notify.payload);
  END;
  $notify$;
  COMMENT ON FUNCTION ${SCHEMA}.notify(text, text) IS
    'pg-notify-ws: pg_notify for payloads of any size (under ${NOTIFY_LIMIT_BYTES} bytes as they are, larger ones by reference to pgws.payloads)';

  -- Only at the first install: a re-run keeps whatever was revoked or granted since.
  IF fresh THEN
    GRANT USAGE ON SCHEMA ${SCHEMA} TO PUBLIC;
    GRANT EXECUTE ON FUNCTION ${SCHEMA}.notify(text, text) TO PUBLIC;
  END IF;
END
$install$;
`;
