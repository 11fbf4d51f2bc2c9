/**
 * The SQL that `bun run sql` prints: schema `pgws` with `pgws.notify(channel, payload)`, NOTIFY for
 * payloads of any size, the durable channels' `pgws.send` (`durable-sql.ts`), and the operator's cut-offs:
 * `pgws.disconnect`, `pgws.revoke` and `pgws.unrevoke` with the tables they write. Pure text, also run by the tests and the benchmark, so what they exercise is
 * exactly what a user installs.
 *
 * One statement (a DO block): atomic under psql's autocommit, inside a migration's transaction, or as
 * one multi-statement query, and serialised by an advisory lock, so concurrent installs wait for each
 * other instead of colliding in the catalogs. Every part is idempotent; grants are set only when the
 * schema (or a function) is first created, so a re-run keeps whatever an administrator changed since.
 */
import { CONTROL_CHANNEL } from '../base/name.ts';
import { NOTIFY_MAX_BYTES } from '../base/notify.ts';
import { MARKER } from '../channels/reference.ts';
import { DURABLE_FUNCTIONS, DURABLE_SQL, WAKE_FUNCTION } from './durable-sql.ts';

/** The schema the script creates; the bridge reads `payloads` in it. */
export const SCHEMA = 'pgws';

// PG: NOTIFY refuses a payload of this many bytes or more (NOTIFY_PAYLOAD_MAX_LENGTH, default build).
const NOTIFY_LIMIT_BYTES = NOTIFY_MAX_BYTES + 1;

// 'pgws' in ASCII: a key no other application is likely to pick.
const INSTALL_LOCK = 0x70677773;
const marker = `chr(${MARKER.charCodeAt(0)}) || '${MARKER.slice(1)}'`;

/**
 * How long `pgws.disconnects` keeps a row: a bridge whose database link was down when a disconnect was
 * made applies it once the link is back, if that is within this time.
 */
export const DISCONNECT_KEEP_SECONDS = 3600;

/**
 * The keys of what the cut-off functions notify on {@link CONTROL_CHANNEL}: `{"revocation": subject}`
 * (its row changed) and `{"disconnect": id}` (a row of `pgws.disconnects`). Only hints: the bridge reads
 * the row, so a NOTIFY anyone can send on the channel changes nothing.
 */
export const HINT = { revocation: 'revocation', disconnect: 'disconnect' } as const;

const cutoffFunctions = ['disconnect(text, text)', 'revoke(text, timestamptz)', 'unrevoke(text)'];

const control = `'${CONTROL_CHANNEL}'`;

// Inside the install's DO block. `#variable_conflict use_column`: in these bodies a bare name is the
// table's column; the arguments are always written qualified (`revoke.subject`).
const CUTOFF_SQL = `  -- Logged tables: a revocation must survive a crash of the database as well as a restart of a bridge.
  CREATE TABLE IF NOT EXISTS ${SCHEMA}.revocations (
    subject text PRIMARY KEY,
    before timestamptz NOT NULL,
    revoked_at timestamptz NOT NULL DEFAULT now(),
    revoked_by name NOT NULL DEFAULT session_user
  );
  COMMENT ON TABLE ${SCHEMA}.revocations IS
    'pg-notify-ws: tokens of subject issued (iat) before \`before\`, or without iat, are refused by every bridge; written by pgws.revoke and pgws.unrevoke';
  CREATE TABLE IF NOT EXISTS ${SCHEMA}.disconnects (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subject text NOT NULL,
    reason text,
    made_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    made_by name NOT NULL DEFAULT session_user
  );
  CREATE INDEX IF NOT EXISTS disconnects_made_at ON ${SCHEMA}.disconnects (made_at);
  COMMENT ON TABLE ${SCHEMA}.disconnects IS
    'pg-notify-ws: pgws.disconnect calls of the last ${DISCONNECT_KEEP_SECONDS} seconds, for bridges whose database link was down when they were made';

  CREATE OR REPLACE FUNCTION ${SCHEMA}.disconnect(subject text, reason text DEFAULT NULL) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
  AS $disconnect$
  #variable_conflict use_column
  DECLARE
    made bigint;
  BEGIN
    IF coalesce(disconnect.subject, '') = '' THEN
      RAISE EXCEPTION 'pgws.disconnect: subject must not be empty';
    END IF;
    DELETE FROM ${SCHEMA}.disconnects WHERE made_at < clock_timestamp() - make_interval(secs => ${DISCONNECT_KEEP_SECONDS});
    INSERT INTO ${SCHEMA}.disconnects (subject, reason) VALUES (disconnect.subject, disconnect.reason)
      RETURNING id INTO made;
    -- Delivered at commit, like every NOTIFY: the bridges act when the caller's transaction commits.
    PERFORM pg_notify(${control}, json_build_object('${HINT.disconnect}', made)::text);
  END;
  $disconnect$;
  COMMENT ON FUNCTION ${SCHEMA}.disconnect(text, text) IS
    'pg-notify-ws: every bridge closes the connections of subject with 4403 (reason as the close text); new ones are not prevented';

  CREATE OR REPLACE FUNCTION ${SCHEMA}.revoke(subject text, before timestamptz DEFAULT now()) RETURNS timestamptz
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
  AS $revoke$
  #variable_conflict use_column
  DECLARE
    kept timestamptz;
  BEGIN
    IF coalesce(revoke.subject, '') = '' THEN
      RAISE EXCEPTION 'pgws.revoke: subject must not be empty';
    END IF;
    -- A later call moves \`before\` later, never earlier: what either call refused stays refused.
    INSERT INTO ${SCHEMA}.revocations AS r (subject, before) VALUES (revoke.subject, coalesce(revoke.before, now()))
      ON CONFLICT (subject) DO UPDATE
        SET before = greatest(r.before, excluded.before), revoked_at = now(), revoked_by = session_user
      RETURNING r.before INTO kept;
    PERFORM pg_notify(${control}, json_build_object('${HINT.revocation}', revoke.subject)::text);
    RETURN kept;
  END;
  $revoke$;
  COMMENT ON FUNCTION ${SCHEMA}.revoke(text, timestamptz) IS
    'pg-notify-ws: every bridge refuses the tokens of subject issued before \`before\` (or without iat) and closes the connections using them with 4403; returns the \`before\` in force';

  CREATE OR REPLACE FUNCTION ${SCHEMA}.unrevoke(subject text) RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
  AS $unrevoke$
  #variable_conflict use_column
  BEGIN
    DELETE FROM ${SCHEMA}.revocations WHERE subject = unrevoke.subject;
    IF NOT FOUND THEN
      RETURN false;
    END IF;
    PERFORM pg_notify(${control}, json_build_object('${HINT.revocation}', unrevoke.subject)::text);
    RETURN true;
  END;
  $unrevoke$;
  COMMENT ON FUNCTION ${SCHEMA}.unrevoke(text) IS
    'pg-notify-ws: lifts the revocation of subject; returns whether there was one';
`;

/** The install script, ready to print or run. */
export const INSTALL_SQL = `-- pg-notify-ws: pgws.notify(channel, payload), NOTIFY for payloads of any size; and
-- pgws.disconnect, pgws.revoke and pgws.unrevoke, which cut a subject (a token's "sub") off on every bridge.
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
--
-- Cutting a subject off (bridges with [auth]): pgws.disconnect(subject, reason) closes its connections
-- now; pgws.revoke(subject, before) refuses its tokens issued before \`before\` (and those without iat), on
-- every bridge and across restarts, and closes the connections using them; pgws.unrevoke(subject) lifts
-- that. Revocations are the rows of pgws.revocations; disconnects are kept ${DISCONNECT_KEEP_SECONDS / 3600} hour in
-- pgws.disconnects. The three functions are SECURITY DEFINER and NOT executable by PUBLIC: only the
-- owner may call them until it grants them to the operators' role, and a bridge that does not connect as
-- the owner must read both tables (without, it accepts no token):
--   GRANT EXECUTE ON FUNCTION pgws.disconnect(text, text), pgws.revoke(text, timestamptz),
--     pgws.unrevoke(text) TO operators;
--   GRANT SELECT ON pgws.revocations, pgws.disconnects TO bridge_role, operators;
--
-- Durable channels ([channels.NAME] durable = true): pgws.send(channel, payload) stores the payload as the
-- channel's next message in pgws.messages, numbered in the writer's transaction (seq order is commit
-- order, a rollback leaves no hole), and returns its seq; bridges read the rows after the commit's
-- wake-up NOTIFY. It is SECURITY DEFINER and executable by PUBLIC, like pgws.notify. A bridge that does
-- not connect as the owner needs:
--   GRANT SELECT, DELETE ON pgws.messages TO bridge_role;
-- pgws.wake(channels, on), which a bridge calls at startup to say whether pgws.send NOTIFYs it ([database]
-- ingest), is not executable by PUBLIC: turning wake-ups off delays notify-mode bridges. Such a bridge needs:
--   GRANT EXECUTE ON FUNCTION pgws.wake(text[], boolean) TO bridge_role;
DO $install$
DECLARE
  fresh boolean;
  new_cutoffs boolean;
  new_durable boolean;
  new_wake boolean;
BEGIN
  PERFORM pg_advisory_xact_lock(${INSTALL_LOCK});
  fresh := to_regnamespace('${SCHEMA}') IS NULL;
  new_cutoffs := fresh OR to_regprocedure('${SCHEMA}.revoke(text, timestamptz)') IS NULL;
  new_durable := fresh OR to_regprocedure('${SCHEMA}.send(text, text)') IS NULL;
  new_wake := fresh OR to_regprocedure('${SCHEMA}.${WAKE_FUNCTION}') IS NULL;
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

${CUTOFF_SQL}
${DURABLE_SQL}
  -- Only at the first install: a re-run keeps whatever was revoked or granted since.
  IF fresh THEN
    GRANT USAGE ON SCHEMA ${SCHEMA} TO PUBLIC;
    GRANT EXECUTE ON FUNCTION ${SCHEMA}.notify(text, text) TO PUBLIC;
  END IF;
  -- Like pgws.notify: anyone who may NOTIFY may send. Set once, when first created.
  IF new_durable THEN
    GRANT EXECUTE ON FUNCTION ${DURABLE_FUNCTIONS.map((f) => `${SCHEMA}.${f}`).join(', ')} TO PUBLIC;
  END IF;
  -- PG: a new function is executable by PUBLIC unless that is revoked; these cut users off, so only the
  -- owner calls them until it grants them on. Once, when first created: a re-run keeps grants made since.
  IF new_wake THEN
    REVOKE EXECUTE ON FUNCTION ${SCHEMA}.${WAKE_FUNCTION} FROM PUBLIC;
  END IF;
  IF new_cutoffs THEN
    REVOKE EXECUTE ON FUNCTION ${cutoffFunctions.map((f) => `${SCHEMA}.${f}`).join(', ')} FROM PUBLIC;
  END IF;
END
$install$;
`;
