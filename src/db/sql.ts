/**
 * The `realtime` schema, as versioned migrations. Each runs once, in its own transaction;
 * `channelFunction` is re-created on every run so PG_CHANNEL can change without a new version.
 */

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const migrations: Migration[] = [
  {
    version: 1,
    name: "outbox, counters, dispatch queue, evictions",
    sql: /* sql */ `
CREATE TABLE realtime.ticket_events (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  ticket_id text NOT NULL,
  seq bigint NOT NULL,
  type text NOT NULL,
  data jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  UNIQUE (ticket_id, seq)
);
CREATE INDEX ticket_events_created_at_idx ON realtime.ticket_events (created_at);

-- one row per ticket, updated by the publishing transaction: its row lock makes seq order commit order
CREATE TABLE realtime.ticket_seqs (
  ticket_id text PRIMARY KEY,
  last_seq bigint NOT NULL
);

-- events committed but not yet emitted; the elected listener emits and deletes them in id order
CREATE TABLE realtime.pending_dispatch (
  event_id bigint PRIMARY KEY REFERENCES realtime.ticket_events (id) ON DELETE CASCADE
);

CREATE TABLE realtime.evictions (
  ticket_id text NOT NULL,
  user_id text NOT NULL,
  evicted_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  dispatched boolean NOT NULL DEFAULT false,
  PRIMARY KEY (ticket_id, user_id)
);
CREATE INDEX evictions_pending_idx ON realtime.evictions (evicted_at) WHERE NOT dispatched;

CREATE FUNCTION realtime.check_ticket_id(ticket_id text) RETURNS void LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  IF ticket_id IS NULL OR ticket_id !~ '^[A-Za-z0-9_.:@-]{1,128}$' THEN
    RAISE EXCEPTION 'realtime: ticket_id must be 1-128 characters of A-Z a-z 0-9 _ . : @ - (got %)', coalesce(quote_literal(left(ticket_id, 40)), 'NULL')
      USING ERRCODE = '22023';
  END IF;
END $$;

CREATE FUNCTION realtime.publish_ticket_event(ticket_id text, type text, data jsonb DEFAULT '{}'::jsonb)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  next_seq bigint;
  new_id bigint;
BEGIN
  PERFORM realtime.check_ticket_id(publish_ticket_event.ticket_id);
  IF publish_ticket_event.type IS NULL OR length(publish_ticket_event.type) NOT BETWEEN 1 AND 200 THEN
    RAISE EXCEPTION 'realtime.publish_ticket_event: type must be 1-200 characters' USING ERRCODE = '22023';
  END IF;
  INSERT INTO realtime.ticket_seqs AS s (ticket_id, last_seq) VALUES (publish_ticket_event.ticket_id, 1)
    ON CONFLICT ON CONSTRAINT ticket_seqs_pkey DO UPDATE SET last_seq = s.last_seq + 1
    RETURNING s.last_seq INTO next_seq;
  INSERT INTO realtime.ticket_events (ticket_id, seq, type, data)
    VALUES (publish_ticket_event.ticket_id, next_seq, publish_ticket_event.type, coalesce(publish_ticket_event.data, 'null'::jsonb))
    RETURNING id INTO new_id;
  INSERT INTO realtime.pending_dispatch (event_id) VALUES (new_id);
  -- a constant payload: PostgreSQL folds the wake-ups of one transaction into one
  PERFORM pg_notify(realtime.notify_channel(), '');
  RETURN next_seq;
END $$;

CREATE FUNCTION realtime.watch_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  row_data jsonb;
  old_ticket text;
  new_ticket text;
  event_type text := TG_TABLE_NAME || '.' || lower(TG_OP);
BEGIN
  IF TG_OP <> 'INSERT' THEN old_ticket := to_jsonb(OLD) ->> TG_ARGV[0]; END IF;
  IF TG_OP <> 'DELETE' THEN
    row_data := to_jsonb(NEW);
    new_ticket := row_data ->> TG_ARGV[0];
  ELSE
    row_data := to_jsonb(OLD);
  END IF;
  IF new_ticket IS NOT NULL THEN PERFORM realtime.publish_ticket_event(new_ticket, event_type, row_data); END IF;
  -- a row moved to another ticket, or deleted: the old ticket hears of it too
  IF old_ticket IS NOT NULL AND old_ticket IS DISTINCT FROM new_ticket THEN
    PERFORM realtime.publish_ticket_event(old_ticket, event_type, row_data);
  END IF;
  RETURN NULL;
END $$;

CREATE FUNCTION realtime.watch_table(tbl regclass, ticket_column text DEFAULT 'id') RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (
    SELECT 1 FROM pg_attribute WHERE attrelid = tbl AND attname = ticket_column AND attnum > 0 AND NOT attisdropped
  ) THEN
    RAISE EXCEPTION 'realtime.watch_table: table % has no column %', tbl, quote_ident(ticket_column) USING ERRCODE = '42703';
  END IF;
  EXECUTE format('DROP TRIGGER IF EXISTS realtime_watch ON %s', tbl);
  EXECUTE format(
    'CREATE TRIGGER realtime_watch AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION realtime.watch_trigger(%L)',
    tbl, ticket_column);
END $$;

CREATE FUNCTION realtime.unwatch_table(tbl regclass) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('DROP TRIGGER IF EXISTS realtime_watch ON %s', tbl);
END $$;

CREATE FUNCTION realtime.evict(ticket_id text, user_id text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM realtime.check_ticket_id(evict.ticket_id);
  IF evict.user_id IS NULL OR length(evict.user_id) NOT BETWEEN 1 AND 256 THEN
    RAISE EXCEPTION 'realtime.evict: user_id must be 1-256 characters' USING ERRCODE = '22023';
  END IF;
  INSERT INTO realtime.evictions AS e (ticket_id, user_id) VALUES (evict.ticket_id, evict.user_id)
    ON CONFLICT ON CONSTRAINT evictions_pkey DO UPDATE SET evicted_at = clock_timestamp(), dispatched = false;
  PERFORM pg_notify(realtime.notify_channel(), '');
END $$;
`,
  },
  {
    version: 2,
    name: "seq assigned by the leader after commit, no NOTIFY from writers, leader lease",
    sql: /* sql */ `
-- The writer pays one INSERT: the seq is assigned after commit by the elected leader, in the order
-- the commits became visible to it. A NULL seq marks an event that is committed but not yet
-- sequenced; the partial index is the dispatch queue, which the leader polls with a read-only
-- probe. The writer sends no NOTIFY: PostgreSQL serializes the commits of every transaction that
-- notified (a lock on the notification queue, taken at commit), which made publish_ticket_event
-- 3-6x slower than a plain INSERT under 32 writers.
ALTER TABLE realtime.ticket_events ALTER COLUMN seq DROP NOT NULL;
CREATE INDEX ticket_events_unsequenced_idx ON realtime.ticket_events (id) WHERE seq IS NULL;

-- the last seq the leader assigned per ticket; only the leader writes it, so no writer waits on it
ALTER TABLE realtime.ticket_seqs RENAME TO ticket_heads;
ALTER TABLE realtime.ticket_heads RENAME CONSTRAINT ticket_seqs_pkey TO ticket_heads_pkey;

-- events still queued under the old scheme already have their seq: instances repair them from the
-- outbox (reconciliation), so the queue can go
DROP TABLE realtime.pending_dispatch;

-- evictions reach instances by reconciliation too: no dispatched flag to flip on every batch
DROP INDEX realtime.evictions_pending_idx;
ALTER TABLE realtime.evictions DROP COLUMN dispatched;
CREATE INDEX evictions_evicted_at_idx ON realtime.evictions (evicted_at);

-- the leader's lease: renewed by the leader's session; a standby that finds it expired ends that
-- session, so a frozen leader loses its advisory lock and cannot commit a sequencing batch
CREATE TABLE realtime.leader (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  instance_id text NOT NULL,
  pid integer NOT NULL,
  lease_ms integer NOT NULL,
  renewed_at timestamptz NOT NULL
);

CREATE OR REPLACE FUNCTION realtime.publish_ticket_event(ticket_id text, type text, data jsonb DEFAULT '{}'::jsonb)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  new_id bigint;
BEGIN
  PERFORM realtime.check_ticket_id(publish_ticket_event.ticket_id);
  IF publish_ticket_event.type IS NULL OR length(publish_ticket_event.type) NOT BETWEEN 1 AND 200 THEN
    RAISE EXCEPTION 'realtime.publish_ticket_event: type must be 1-200 characters' USING ERRCODE = '22023';
  END IF;
  INSERT INTO realtime.ticket_events (ticket_id, type, data)
    VALUES (publish_ticket_event.ticket_id, publish_ticket_event.type, coalesce(publish_ticket_event.data, 'null'::jsonb))
    RETURNING id INTO new_id;
  RETURN new_id;
END $$;

CREATE OR REPLACE FUNCTION realtime.evict(ticket_id text, user_id text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM realtime.check_ticket_id(evict.ticket_id);
  IF evict.user_id IS NULL OR length(evict.user_id) NOT BETWEEN 1 AND 256 THEN
    RAISE EXCEPTION 'realtime.evict: user_id must be 1-256 characters' USING ERRCODE = '22023';
  END IF;
  INSERT INTO realtime.evictions AS e (ticket_id, user_id) VALUES (evict.ticket_id, evict.user_id)
    ON CONFLICT ON CONSTRAINT evictions_pkey DO UPDATE SET evicted_at = clock_timestamp();
  PERFORM pg_notify(realtime.notify_channel(), 'realtime:evict');
END $$;
`,
  },
  {
    // independent of version 2 (the delivery redesign): it only redefines watch_trigger, whose
    // contract with publish_ticket_event (ticket id, type, data) both versions keep
    version: 3,
    name: "watch_table skips rows without a valid ticket id instead of failing the write",
    sql: /* sql */ `
-- rows of watched tables that published nothing: their ticket id was NULL or invalid. Append-only
-- (no counter row that concurrent writers would queue on); the gateways count and delete them.
CREATE TABLE realtime.skipped_events (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  table_name text NOT NULL,
  op text NOT NULL,
  ticket_column text NOT NULL,
  reason text NOT NULL,
  ticket_value text,
  skipped_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- the same rule as realtime.check_ticket_id, as a test instead of an exception
CREATE FUNCTION realtime.valid_ticket_id(ticket_id text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
  SELECT ticket_id IS NOT NULL AND ticket_id ~ '^[A-Za-z0-9_.:@-]{1,128}$'
$$;

-- the trigger must never fail the application's write: it checks the id first and skips (and
-- records) what publish_ticket_event would refuse, without a subtransaction per row
CREATE OR REPLACE FUNCTION realtime.watch_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  row_data jsonb;
  old_ticket text;
  new_ticket text;
  event_type text := TG_TABLE_NAME || '.' || lower(TG_OP);
  col text := TG_ARGV[0];
  targets text[] := '{}';
  target text;
BEGIN
  IF TG_OP <> 'INSERT' THEN old_ticket := to_jsonb(OLD) ->> col; END IF;
  IF TG_OP <> 'DELETE' THEN
    row_data := to_jsonb(NEW);
    new_ticket := row_data ->> col;
    targets := ARRAY[new_ticket];
  ELSE
    row_data := to_jsonb(OLD);
    targets := ARRAY[old_ticket];
  END IF;
  -- a row moved to another ticket: the old ticket hears of it too (a row that had none: nothing to tell)
  IF TG_OP = 'UPDATE' AND old_ticket IS NOT NULL AND old_ticket IS DISTINCT FROM new_ticket THEN
    targets := targets || old_ticket;
  END IF;
  FOREACH target IN ARRAY targets LOOP
    IF realtime.valid_ticket_id(target) THEN
      PERFORM realtime.publish_ticket_event(target, event_type, row_data);
    ELSE
      INSERT INTO realtime.skipped_events (table_name, op, ticket_column, reason, ticket_value)
        VALUES (TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, lower(TG_OP), col,
                CASE WHEN target IS NULL THEN 'null ticket id' ELSE 'invalid ticket id' END, left(target, 64));
    END IF;
  END LOOP;
  RETURN NULL;
END $$;
`,
  },
];

/** Re-created on every migrate run, so PG_CHANNEL may change without a schema version. */
export function channelFunction(channel: string): string {
  return `CREATE OR REPLACE FUNCTION realtime.notify_channel() RETURNS text LANGUAGE sql STABLE AS $$ SELECT ${quoteLiteral(channel)}::text $$;`;
}

export function quoteLiteral(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

export function quoteIdent(text: string): string {
  return `"${text.replace(/"/g, '""')}"`;
}
