import { expect } from "chai";
import { migrate } from "../src/db/migrate.js";
import { migrations } from "../src/db/sql.js";
import { silentLogger } from "../src/logger.js";
import { createTestDatabase, sql } from "./support/db.js";
import { spawnGateway, waitExit } from "./support/process.js";
import { fileURLToPath } from "node:url";

const CLI = fileURLToPath(new URL("../src/cli.ts", import.meta.url));

async function schema(url: string) {
  return sql(
    url,
    `SELECT c.relname AS name, c.relkind AS kind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'realtime'
     UNION ALL SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', 'f' FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'realtime'
     ORDER BY 1`,
  );
}

describe("realtime-gateway migrate", () => {
  it("is idempotent: a second run applies nothing and changes nothing", async () => {
    const url = await createTestDatabase({ migrated: false });
    const first = await migrate(url, "ticket_updates", silentLogger);
    expect(first.applied).to.deep.equal(migrations.map((m) => m.version));
    const before = await schema(url);
    const second = await migrate(url, "ticket_updates", silentLogger);
    expect(second.applied).to.deep.equal([]);
    expect(await schema(url)).to.deep.equal(before);
    expect(before.map((r) => r.name)).to.include.members([
      "ticket_events",
      "publish_ticket_event(ticket_id text, type text, data jsonb)",
      "watch_table(tbl regclass, ticket_column text)",
      "evict(ticket_id text, user_id text)",
    ]);
  });

  it("runs concurrently from two processes without error and ends with one schema", async function () {
    this.timeout(60_000);
    const url = await createTestDatabase({ migrated: false });
    const env = { DATABASE_URL: url, LOG_LEVEL: "warn" };
    const runs = await Promise.all([1, 2, 3].map(() => spawnGateway(env, { entry: CLI, args: ["migrate"], waitForStart: false })));
    const codes = await Promise.all(runs.map((run) => waitExit(run)));
    expect(codes, runs.map((r) => r.output.join("\n")).join("\n---\n")).to.deep.equal([0, 0, 0]);
    const outputs = runs.map((r) => r.output.join("\n"));
    expect(outputs.filter((o) => o.includes("applied 1"))).to.have.length(1);
    expect(await sql(url, "SELECT version FROM realtime.schema_migrations")).to.deep.equal(migrations.map((m) => ({ version: m.version })));
  });

  it("follows PG_CHANNEL: publish notifies the configured channel", async () => {
    const url = await createTestDatabase({ migrated: false });
    await migrate(url, "helpdesk_events", silentLogger);
    expect(await sql(url, "SELECT realtime.notify_channel() AS c")).to.deep.equal([{ c: "helpdesk_events" }]);
    await migrate(url, "ticket_updates", silentLogger);
    expect(await sql(url, "SELECT realtime.notify_channel() AS c")).to.deep.equal([{ c: "ticket_updates" }]);
  });

  it("fails with a clear message without DATABASE_URL, and with an unreachable database", async () => {
    const none = await spawnGateway({}, { entry: CLI, args: ["migrate"], waitForStart: false });
    expect(await waitExit(none)).to.not.equal(0);
    expect(none.output.join("\n")).to.contain("DATABASE_URL is required");
    const down = await spawnGateway({ DATABASE_URL: "postgres://nobody@127.0.0.1:1/none" }, { entry: CLI, args: ["migrate"], waitForStart: false });
    expect(await waitExit(down)).to.equal(1);
    expect(down.output.join("\n")).to.match(/ECONNREFUSED|connect/);
  });
});
