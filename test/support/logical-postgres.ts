/**
 * The PostgreSQL of the replication source's tests: the shared server runs wal_level=replica, so
 * one private server with wal_level=logical is started lazily, once per mocha process, on a free
 * port, and stopped after the run (test/support/hooks.ts). Its databases are made like the
 * shared server's (test/support/db.ts: a migrated template, one database per test).
 */
import { startPostgresServer, type PostgresServer } from "./postgres-server.js";

let server: Promise<PostgresServer> | undefined;

/** The private server's base URL (database `postgres`), starting it on first use. */
export async function logicalPostgresUrl(): Promise<string> {
  server ??= startPostgresServer({
    perTest: false,
    flags: ["-c", "wal_level=logical", "-c", "max_replication_slots=64", "-c", "max_wal_senders=64", "-c", "wal_sender_timeout=10s"],
  });
  return (await server).url;
}

export async function stopLogicalPostgres(): Promise<void> {
  const running = server;
  server = undefined;
  if (running) await (await running).destroy();
}
