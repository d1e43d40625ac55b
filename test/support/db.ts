/**
 * Every test gets its own database, cloned from a template migrated once per schema version
 * (graphile-worker style), so tests never see each other's tickets or listener.
 */
import { createHash, randomBytes } from "node:crypto";
import pg from "pg";
import { migrate } from "../../src/db/migrate.js";
import { channelFunction, migrations } from "../../src/db/sql.js";
import { silentLogger } from "../../src/logger.js";
import { onCleanup } from "./cleanup.js";
import { TEST_DATABASE_URL } from "./env.js";
import { currentEventSource } from "./event-sources.js";
import { logicalPostgresUrl } from "./logical-postgres.js";

/** database name -> the server's base URL */
const created = new Map<string, string>();
/** per server (base URL), its migrated template */
const templates = new Map<string, Promise<string>>();

export function urlFor(database: string, base = TEST_DATABASE_URL): string {
  const url = new URL(base);
  url.pathname = `/${database}`;
  return url.toString();
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>, base = TEST_DATABASE_URL): Promise<T> {
  const client = new pg.Client({ connectionString: base });
  client.on("error", () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

function templateName(): string {
  const hash = createHash("sha1")
    .update(JSON.stringify(migrations) + channelFunction("ticket_updates"))
    .digest("hex")
    .slice(0, 10);
  return `rg_template_${hash}`;
}

async function ensureTemplate(base: string): Promise<string> {
  const name = templateName();
  await admin(async (client) => {
    // several test processes may start at once: one builds the template, the others wait
    await client.query("SELECT pg_advisory_lock(77123001)");
    try {
      const { rowCount } = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
      if (rowCount) return;
      const building = `${name}_build_${randomBytes(3).toString("hex")}`;
      await client.query(`CREATE DATABASE ${building}`);
      await migrate(urlFor(building, base), "ticket_updates", silentLogger);
      await client.query(`ALTER DATABASE ${building} RENAME TO ${name}`);
    } finally {
      await client.query("SELECT pg_advisory_unlock(77123001)");
    }
  }, base);
  return name;
}

/** The server a test's databases live on: the private wal_level=logical one for the replication source. */
async function serverFor(server: "shared" | "logical" | undefined): Promise<string> {
  const logical = server ? server === "logical" : currentEventSource() === "replication";
  return logical ? logicalPostgresUrl() : TEST_DATABASE_URL;
}

/** A fresh, migrated database for this test; dropped after the test. */
export async function createTestDatabase(options: { migrated?: boolean; server?: "shared" | "logical" } = {}): Promise<string> {
  const name = `rg_t_${process.pid}_${randomBytes(4).toString("hex")}`;
  const base = await serverFor(options.server);
  if (options.migrated === false) {
    await admin((client) => client.query(`CREATE DATABASE ${name}`), base);
  } else {
    if (!templates.has(base)) templates.set(base, ensureTemplate(base));
    const source = await templates.get(base)!;
    await admin(async (client) => {
      await client.query("SELECT pg_advisory_lock(77123002)");
      try {
        await client.query(`CREATE DATABASE ${name} TEMPLATE ${source}`);
      } finally {
        await client.query("SELECT pg_advisory_unlock(77123002)");
      }
    }, base);
  }
  created.set(name, base);
  onCleanup(`database ${name}`, () => dropDatabase(name));
  return urlFor(name, base);
}

async function dropDatabase(name: string): Promise<void> {
  const base = created.get(name) ?? TEST_DATABASE_URL;
  await admin(async (client) => {
    // a database with a replication slot cannot be dropped: end its walsender, drop the slot
    for (let attempt = 0; ; attempt++) {
      const { rows } = await client.query<{ slot_name: string; active_pid: number | null }>("SELECT slot_name, active_pid FROM pg_replication_slots WHERE database = $1", [name]);
      if (rows.length === 0) break;
      try {
        for (const row of rows) {
          if (row.active_pid) await client.query("SELECT pg_terminate_backend($1)", [row.active_pid]);
          await client.query("SELECT pg_drop_replication_slot($1)", [row.slot_name]);
        }
      } catch (error) {
        // the walsender takes a moment to exit after pg_terminate_backend
        if (attempt > 100) throw error;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  }, base);
  created.delete(name);
}

export async function dropTestDatabases(): Promise<void> {
  for (const name of [...created.keys()]) await dropDatabase(name).catch(() => undefined);
}

/** Run SQL against a test database with a short-lived client. */
export async function sql<T extends pg.QueryResultRow = pg.QueryResultRow>(url: string, text: string, values: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  client.on("error", () => undefined);
  await client.connect();
  try {
    return (await client.query<T>(text, values)).rows;
  } finally {
    await client.end();
  }
}

/** Wait until the leader has numbered every committed event (seq is assigned after commit). */
export async function waitSequenced(url: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [row] = await sql<{ n: number }>(url, "SELECT count(*)::int AS n FROM realtime.ticket_events WHERE seq IS NULL");
    if (row!.n === 0) return;
    if (Date.now() > deadline) throw new Error(`${row!.n} events still unsequenced after ${timeoutMs}ms (is a leader running?)`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
