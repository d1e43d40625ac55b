/**
 * EVENT_SOURCE resolved against the server at start: `replication` needs `wal_level=logical`, a
 * role that may replicate (superuser or REPLICATION), a free replication slot (or ours) and the
 * publication on the outbox (created here when missing, which needs the outbox's owner). `auto`
 * takes replication when all of that holds, else the queue, and logs which and why; an explicit
 * `replication` that cannot work is a one-line start-up error saying what is missing.
 */
import pg from "pg";
import type { EventSource, EventSourceSetting } from "../config.js";
import { StartupError, coerceError } from "../errors.js";
import type { Logger } from "../logger.js";
import { quoteIdent } from "./sql.js";

export interface EventSourceChoice {
  source: EventSource;
  /** why (logged at start) */
  reason: string;
}

interface Facts {
  wal_level: string;
  may_replicate: boolean;
  max_slots: number;
  slots_used: number;
  slot_database: string | null;
  database: string;
  publication: boolean;
}

const FACTS_SQL = `
SELECT current_setting('wal_level') AS wal_level,
       (SELECT rolsuper OR rolreplication FROM pg_roles WHERE rolname = current_user) AS may_replicate,
       current_setting('max_replication_slots')::int AS max_slots,
       (SELECT count(*)::int FROM pg_replication_slots) AS slots_used,
       (SELECT database FROM pg_replication_slots WHERE slot_name = $1) AS slot_database,
       current_database() AS database,
       EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1) AS publication`;

/** Create the publication of the outbox's inserts (idempotent; needs the outbox's owner). */
export async function ensurePublication(client: pg.ClientBase, name: string): Promise<void> {
  const { rowCount } = await client.query("SELECT 1 FROM pg_publication WHERE pubname = $1", [name]);
  if (rowCount) return;
  try {
    await client.query(`CREATE PUBLICATION ${quoteIdent(name)} FOR TABLE realtime.ticket_events WITH (publish = 'insert')`);
  } catch (error) {
    // two instances starting at once: the other one created it (duplicate_object, or the
    // catalog's unique index when both passed the check at the same moment)
    const code = (error as { code?: string }).code;
    if (code !== "42710" && code !== "23505") throw error;
  }
}

/** What stops replication on this server, or undefined when it can run. */
async function missing(client: pg.Client, slot: string): Promise<string | undefined> {
  const { rows } = await client.query<Facts>(FACTS_SQL, [slot]);
  const facts = rows[0]!;
  if (facts.wal_level !== "logical") return `wal_level is ${facts.wal_level} (needs logical: set wal_level = logical and restart PostgreSQL)`;
  if (!facts.may_replicate) return "the role may not replicate (ALTER ROLE … REPLICATION, or a superuser)";
  if (facts.slot_database !== null && facts.slot_database !== facts.database) {
    return `replication slot ${slot} belongs to database ${facts.slot_database} (set REPLICATION_SLOT to a name of its own)`;
  }
  if (facts.slot_database === null && facts.slots_used >= facts.max_slots) return `no free replication slot (max_replication_slots = ${facts.max_slots}, all used)`;
  if (!facts.publication) {
    try {
      await ensurePublication(client, slot);
    } catch (error) {
      return `the publication ${slot} cannot be created (${coerceError(error).message}; create it as the outbox's owner: CREATE PUBLICATION ${slot} FOR TABLE realtime.ticket_events WITH (publish = 'insert'))`;
    }
  }
  return undefined;
}

export async function resolveEventSource(url: string, setting: EventSourceSetting, slot: string, logger: Logger): Promise<EventSourceChoice> {
  if (setting === "queue") return { source: "queue", reason: "EVENT_SOURCE=queue" };
  const client = new pg.Client({ connectionString: url, application_name: "realtime-gateway-setup" });
  client.on("error", () => undefined);
  await client.connect();
  let gap: string | undefined;
  try {
    gap = await missing(client, slot);
  } finally {
    await client.end().catch(() => undefined);
  }
  if (setting === "replication" && gap) throw new StartupError(`EVENT_SOURCE=replication is unavailable on this PostgreSQL: ${gap}; or set EVENT_SOURCE=queue (or auto)`);
  const choice: EventSourceChoice = gap
    ? { source: "queue", reason: `auto: ${gap}` }
    : { source: "replication", reason: `${setting === "auto" ? "auto" : "EVENT_SOURCE=replication"}: wal_level=logical, the role may replicate, publication ${slot} ready` };
  logger.info({ eventSource: choice.source, reason: choice.reason }, `event source: ${choice.source}`);
  return choice;
}
