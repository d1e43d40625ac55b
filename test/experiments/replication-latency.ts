/**
 * Commit-to-numbered latency of each event source, one in-process gateway on a private
 * wal_level=logical PostgreSQL, writers at a steady rate. Run: npx tsx test/experiments/replication-latency.ts [rate] [seconds]
 * Prints the leader's dispatch latency (commit -> numbered, the PostgreSQL part) per source.
 */
import pg from "pg";
import { loadConfig } from "../../src/config.js";
import { createGateway } from "../../src/gateway.js";
import { createLogger } from "../../src/logger.js";
import { migrate } from "../../src/db/migrate.js";
import { silentLogger } from "../../src/logger.js";
import { startPostgresServer } from "../support/postgres-server.js";
import { urlFor } from "../support/db.js";
import { TEST_JWT_SECRET } from "../support/env.js";

const rate = Number(process.argv[2] ?? 500);
const seconds = Number(process.argv[3] ?? 10);
const sources = (process.argv[4] ?? "queue,replication").split(",") as Array<"queue" | "replication">;
const server = await startPostgresServer({ perTest: false, flags: ["-c", "wal_level=logical"] });
try {
  for (const source of sources) {
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    await admin.query(`CREATE DATABASE lat_${source}`);
    await admin.end();
    const url = urlFor(`lat_${source}`, server.url);
    await migrate(url, "ticket_updates", silentLogger);
    const config = loadConfig({ DATABASE_URL: url, PORT: "0", METRICS_PORT: "0", HOST: "127.0.0.1", JWT_SECRET: TEST_JWT_SECRET, EVENT_SOURCE: source, REPLICATION_SLOT: `lat_${source}`, LOG_LEVEL: "warn" });
    const gateway = createGateway(config, { logger: createLogger(config.logLevel, { instanceId: source }) });
    await gateway.start();
    while (!gateway.delivery!.isLeader) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 500));
    const pool = new pg.Pool({ connectionString: url, max: 16 });
    const started = Date.now();
    let issued = 0;
    const inflight: Promise<unknown>[] = [];
    while (Date.now() - started < seconds * 1000) {
      const due = Math.floor(((Date.now() - started) / 1000) * rate);
      while (issued < due) inflight.push(pool.query("SELECT realtime.publish_ticket_event($1, 'x', '{}')", [`t${issued++ % 200}`]));
      await new Promise((r) => setTimeout(r, 2));
    }
    await Promise.all(inflight);
    await new Promise((r) => setTimeout(r, 1500));
    const { rows } = await pool.query<{ p50: number; p90: number; p99: number; n: number }>(
      `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d) AS p50, percentile_cont(0.9) WITHIN GROUP (ORDER BY d) AS p90, percentile_cont(0.99) WITHIN GROUP (ORDER BY d) AS p99, count(*)::int AS n
       FROM (SELECT 0 AS d FROM realtime.ticket_events) x`,
    );
    const histogram = (await gateway.metrics.dispatchLatency.get()).values;
    const total = histogram.find((v) => v.metricName?.endsWith("_count"))!.value;
    const buckets = histogram.filter((v) => v.metricName?.endsWith("_bucket")).map((v) => [Number(v.labels.le), v.value] as const);
    const quantile = (q: number) => buckets.find(([, count]) => count >= q * total)?.[0];
    const restarts = (await gateway.metrics.replicationEvents.get()).values[0]?.value ?? 0;
    const waits = (await gateway.metrics.replicationVisibilityWaits.get()).values[0]?.value ?? 0;
    console.log(`${source}: ${rows[0]!.n} events, commit->numbered p50 <= ${quantile(0.5)! * 1000} ms, p90 <= ${quantile(0.9)! * 1000} ms, p99 <= ${quantile(0.99)! * 1000} ms; from the stream ${restarts}, visibility waits ${waits}`);
    // CPU per PostgreSQL backend (application_name says whose): where the database's time goes
    const { execFileSync } = await import("node:child_process");
    const { rows: backends } = await pool.query<{ pid: number; who: string }>("SELECT pid, coalesce(nullif(application_name, ''), backend_type) AS who FROM pg_stat_activity WHERE datname = current_database() OR backend_type = 'walsender'");
    const cpu = new Map<string, number>();
    for (const { pid, who } of backends) {
      try {
        const [utime, stime] = execFileSync("cat", [`/proc/${pid}/stat`], { encoding: "utf8" }).split(") ")[1]!.split(" ").slice(11, 13).map(Number);
        cpu.set(who, (cpu.get(who) ?? 0) + ((utime! + stime!) * 10));
      } catch {
        // gone
      }
    }
    console.log(`  PostgreSQL CPU ms by backend: ${[...cpu].map(([who, ms]) => `${who} ${ms}`).join(", ")}`);
    await pool.end();
    await gateway.stop("done", { force: true });
  }
} finally {
  await server.destroy();
}
