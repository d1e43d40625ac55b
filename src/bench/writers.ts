/**
 * The writers scenario: what the outbox costs the application. N concurrent writers commit as fast
 * as they can through `realtime.publish_ticket_event`, then the same writers INSERT the same row into
 * a plain table; PostgreSQL's wait events are sampled from pg_stat_activity meanwhile.
 */
import pg from "pg";
import { latencyStats, type LatencyStats } from "./accounting.js";
import type { Progress } from "./progress.js";

export interface WriterPhase {
  mode: "publish_ticket_event" | "plain INSERT";
  gatewayRunning: boolean;
  writers: number;
  commits: number;
  errors: number;
  commitsPerSec: number;
  latency: LatencyStats;
  /** share of sampled active writer backends per wait event ("CPU" when not waiting) */
  waitEvents: Record<string, number>;
}

const PLAIN = "realtime_bench_plain";

export async function prepareWriters(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  client.on("error", () => undefined);
  await client.connect();
  try {
    // the same columns as realtime.ticket_events, without the outbox around it
    await client.query(`CREATE TABLE IF NOT EXISTS ${PLAIN} (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ticket_id text NOT NULL, seq bigint, type text NOT NULL,
      data jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`);
  } finally {
    await client.end();
  }
}

export async function dropWriters(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  client.on("error", () => undefined);
  await client.connect();
  await client.query(`DROP TABLE IF EXISTS ${PLAIN}`).finally(() => client.end());
}

export async function runWriters(options: {
  url: string;
  mode: WriterPhase["mode"];
  gatewayRunning: boolean;
  writers: number;
  tickets: string[];
  durationMs: number;
  progress: Progress;
}): Promise<WriterPhase> {
  const { url, mode, writers, tickets, durationMs } = options;
  const sql =
    mode === "publish_ticket_event"
      ? "SELECT realtime.publish_ticket_event($1, 'bench', $2::jsonb)"
      : `INSERT INTO ${PLAIN} (ticket_id, type, data) VALUES ($1, 'bench', $2::jsonb)`;
  const clients = await Promise.all(
    Array.from({ length: writers + 1 }, async () => {
      const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000, query_timeout: 30_000, application_name: "rg-bench-writer" });
      client.on("error", () => undefined);
      await client.connect();
      return client;
    }),
  );
  const sampler = clients.pop()!;
  await sampler.query("SET application_name = 'rg-bench-sampler'");
  const latencies: number[] = [];
  let errors = 0;
  let nonce = 0;
  const started = Date.now();
  const deadline = started + durationMs;
  const waits: Record<string, number> = {};
  let samples = 0;
  let sampling = true;
  const sampleLoop = (async () => {
    while (sampling) {
      const { rows } = await sampler.query<{ w: string; n: string }>(
        `SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') AS w, count(*) AS n FROM pg_stat_activity
         WHERE application_name = 'rg-bench-writer' AND state = 'active' GROUP BY 1`,
      );
      for (const row of rows) {
        waits[row.w] = (waits[row.w] ?? 0) + Number(row.n);
        samples += Number(row.n);
      }
      options.progress.update({ done: Date.now() - started, total: durationMs, text: `writers: ${mode}${options.gatewayRunning ? " (gateway running)" : ""}, ${latencies.length} commits` });
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  await Promise.all(
    clients.map(async (client, w) => {
      while (Date.now() < deadline) {
        const n = nonce++;
        const ticket = tickets[(n * 7919 + w) % tickets.length]!;
        const t0 = performance.now();
        try {
          await client.query(sql, [ticket, `{"b":${n}}`]);
          latencies.push(performance.now() - t0);
        } catch {
          errors += 1;
        }
      }
    }),
  );
  const elapsed = Date.now() - started;
  sampling = false;
  await sampleLoop.catch(() => undefined);
  await Promise.all([...clients, sampler].map((c) => c.end().catch(() => undefined)));
  const waitEvents = Object.fromEntries(
    Object.entries(waits)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => [k, Math.round((v / Math.max(1, samples)) * 1000) / 10]),
  );
  return {
    mode,
    gatewayRunning: options.gatewayRunning,
    writers,
    commits: latencies.length,
    errors,
    commitsPerSec: (latencies.length * 1000) / elapsed,
    latency: latencyStats(Float64Array.from(latencies)),
    waitEvents,
  };
}
