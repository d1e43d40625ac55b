/**
 * `realtime-gateway migrate`: idempotent and safe to run from several instances at once (a session
 * advisory lock serializes them; each migration commits with its version row).
 */
import type { Logger } from "../logger.js";
import { createClient } from "./pool.js";
import { channelFunction, migrations } from "./sql.js";

/** pg_advisory_lock key for migrations ("rg-migr" in ASCII). */
const MIGRATION_LOCK = "8242547007054129522";

export interface MigrateResult {
  applied: number[];
  version: number;
}

export async function migrate(connectionString: string, channel: string, logger: Logger): Promise<MigrateResult> {
  const client = createClient(connectionString, "realtime-gateway-migrate");
  client.on("error", (error) => logger.warn({ err: error }, "migration connection failed"));
  await client.connect();
  try {
    await client.query({ text: "SELECT pg_advisory_lock($1)", values: [MIGRATION_LOCK], query_timeout: 120_000 } as never);
    await client.query("CREATE SCHEMA IF NOT EXISTS realtime");
    await client.query(
      "CREATE TABLE IF NOT EXISTS realtime.schema_migrations (version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
    );
    // publish_ticket_event calls notify_channel(): it must exist before the first migration body runs
    await client.query(channelFunction(channel));
    const { rows } = await client.query<{ version: number }>("SELECT version FROM realtime.schema_migrations");
    const done = new Set(rows.map((row) => row.version));
    const applied: number[] = [];
    for (const migration of migrations) {
      if (done.has(migration.version)) continue;
      await client.query("BEGIN");
      try {
        await client.query(migration.sql);
        await client.query("INSERT INTO realtime.schema_migrations (version, name) VALUES ($1, $2)", [migration.version, migration.name]);
        await client.query("COMMIT");
      } catch (error) {
        await client.query("ROLLBACK").catch(() => undefined);
        throw error;
      }
      applied.push(migration.version);
      logger.info({ version: migration.version, name: migration.name }, "migration applied");
    }
    const version = Math.max(0, ...migrations.map((m) => m.version));
    return { applied, version };
  } finally {
    await client.query("SELECT pg_advisory_unlock_all()").catch(() => undefined);
    await client.end().catch(() => undefined);
  }
}
