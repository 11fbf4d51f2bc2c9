/**
 * The durable channels' part of the install script (`script.ts` puts it inside its DO block): the tables
 * `pgws.streams` (one counter row per channel: its epoch and its last seq) and `pgws.messages` (one row per
 * message), `pgws.send(channel, payload)`, and `pgws.heads(channels)`, which the bridge reads positions from.
 *
 * How the database numbers a stream (docs/PROTOCOL.md "Durable channels"): `pgws.send` increments the
 * channel's counter row in the writer's own transaction. The row stays locked until that transaction ends,
 * so the next writer on the channel waits, then reads the committed value (seq order is commit order) or,
 * after a rollback, the old one again (no hole). Writers on other channels lock other rows and never wait
 * for each other. The cost: on one hot channel writers commit one at a time, each holding the row from its
 * `pgws.send` to its commit; call it last in the transaction to keep that short.
 */
import { CHANNEL_WAKE } from '../channels/reference.ts';

const SCHEMA = 'pgws';
const wake = `chr(${CHANNEL_WAKE.charCodeAt(0)}) || '${CHANNEL_WAKE.slice(1)}'`;

/** The functions the bridge's role and writers call; created executable by PUBLIC, like `pgws.notify`. */
export const DURABLE_FUNCTIONS = ['send(text, text)', 'heads(text[])'];

/**
 * `pgws.wake(channels, on)`: whether `pgws.send` NOTIFYs the bridges of these channels, set by each bridge at
 * startup from its `[database] ingest`. Not executable by PUBLIC (`script.ts` revokes it): turning wake-ups off
 * delays every notify-mode bridge of the channel until it reconnects.
 */
export const WAKE_FUNCTION = 'wake(text[], boolean)';

// Inside the install's DO block, like the cut-offs.
export const DURABLE_SQL = `  -- Durable channels. Logged tables: the point of a durable message is to survive restarts and crashes.
  CREATE TABLE IF NOT EXISTS ${SCHEMA}.streams (
    channel text PRIMARY KEY,
    -- Opaque; the same for every bridge. A stream whose row is deleted starts again at a new epoch.
    epoch text NOT NULL DEFAULT substr(replace(gen_random_uuid()::text, '-', ''), 1, 16),
    seq bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
  );
  -- [database] ingest: true while the channel's bridges learn of new rows by NOTIFY, false when they read the
  -- logical replication of pgws.messages instead. Read by pgws.send with the counter, at no cost of its own.
  ALTER TABLE ${SCHEMA}.streams ADD COLUMN IF NOT EXISTS wake boolean NOT NULL DEFAULT true;
  COMMENT ON TABLE ${SCHEMA}.streams IS
    'pg-notify-ws: one row per durable channel: its epoch and the seq of its last message, updated by pgws.send';
  CREATE TABLE IF NOT EXISTS ${SCHEMA}.messages (
    channel text NOT NULL,
    seq bigint NOT NULL,
    payload text NOT NULL,
    -- clock_timestamp() after the counter row is locked: rises with seq, so retention by age deletes a prefix.
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (channel, seq)
  );
  COMMENT ON TABLE ${SCHEMA}.messages IS
    'pg-notify-ws: the messages of durable channels, written by pgws.send; the bridge deletes those past [channels.NAME] retain and retain_seconds';

  CREATE OR REPLACE FUNCTION ${SCHEMA}.send(channel text, payload text) RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
  AS $send$
  #variable_conflict use_column
  DECLARE
    assigned bigint;
    woken boolean;
  BEGIN
    IF coalesce(send.channel, '') = '' THEN
      RAISE EXCEPTION 'pgws.send: channel must not be empty';
    END IF;
    IF send.payload IS NULL THEN
      RAISE EXCEPTION 'pgws.send: payload must not be null';
    END IF;
    -- Locks the channel's row until this transaction ends: the next writer numbers after our commit.
    UPDATE ${SCHEMA}.streams SET seq = seq + 1 WHERE channel = send.channel RETURNING seq, wake INTO assigned, woken;
    IF NOT FOUND THEN
      INSERT INTO ${SCHEMA}.streams AS s (channel, seq) VALUES (send.channel, 1)
        ON CONFLICT (channel) DO UPDATE SET seq = s.seq + 1
        RETURNING s.seq, s.wake INTO assigned, woken;
    END IF;
    INSERT INTO ${SCHEMA}.messages (channel, seq, payload) VALUES (send.channel, assigned, send.payload);
    -- The bridges' wake-up, delivered at commit: the message itself is read from the table. Skipped when they
    -- read the replication of pgws.messages instead: a NOTIFY serialises every notifying commit of the cluster.
    IF woken THEN
      PERFORM pg_notify(send.channel, ${wake} || assigned::text);
    END IF;
    RETURN assigned;
  END;
  $send$;
  COMMENT ON FUNCTION ${SCHEMA}.send(text, text) IS
    'pg-notify-ws: stores payload as the next message of the durable channel and returns its seq; delivered when the transaction commits';

  CREATE OR REPLACE FUNCTION ${SCHEMA}.heads(channels text[])
    RETURNS TABLE (channel text, epoch text, seq bigint)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
  AS $heads$
  #variable_conflict use_column
  BEGIN
    -- A channel nobody sent on yet gets its row (and so its epoch) now, so every bridge reports the same one.
    INSERT INTO ${SCHEMA}.streams (channel) SELECT DISTINCT unnest(heads.channels) ON CONFLICT DO NOTHING;
    RETURN QUERY SELECT s.channel, s.epoch, s.seq FROM ${SCHEMA}.streams s WHERE s.channel = ANY (heads.channels);
  END;
  $heads$;
  COMMENT ON FUNCTION ${SCHEMA}.heads(text[]) IS
    'pg-notify-ws: the epoch and last seq of each durable channel, creating the rows of new ones';

  CREATE OR REPLACE FUNCTION ${SCHEMA}.wake(channels text[], wake boolean) RETURNS void
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
  AS $wake$
  #variable_conflict use_column
  BEGIN
    INSERT INTO ${SCHEMA}.streams (channel, wake) SELECT DISTINCT unnest(wake.channels), wake.wake
      ON CONFLICT DO NOTHING;
    -- Only rows that change are locked (ON CONFLICT DO UPDATE would lock them all): a bridge restarting in
    -- the same mode never waits for a writer's transaction.
    UPDATE ${SCHEMA}.streams SET wake = wake.wake WHERE channel = ANY (wake.channels) AND wake <> wake.wake;
  END;
  $wake$;
  COMMENT ON FUNCTION ${SCHEMA}.${WAKE_FUNCTION} IS
    'pg-notify-ws: whether pgws.send wakes the bridges of these channels with a NOTIFY ([database] ingest = "notify") or not ("replication")';
`;
