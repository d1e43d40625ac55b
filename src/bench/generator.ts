/**
 * The load generator: light clients spread over worker threads, so one core's event loop is not
 * what the bench measures. The main thread only distributes clients and merges what comes back.
 */
import { Worker } from "node:worker_threads";
import { addSummary, emptySummary, type DeliverySummary } from "./accounting.js";
import type { ClientSpec } from "./light-client.js";
import { SOURCE_EXT } from "./runtime.js";
import type { Counters, ToParent, ToWorker } from "./worker-protocol.js";


export interface ConnectResult {
  connected: number;
  failed: number;
  errors: Record<string, number>;
  durationMs: number;
  /** connections per second over the connect phase */
  rate: number;
}

export interface GeneratorSummary {
  total: DeliverySummary;
  perTicket: Record<string, DeliverySummary>;
  pendingResume: number;
  lastResumedAt: number;
}

export interface Generator {
  connect(clients: ClientSpec[], concurrency: number): Promise<ConnectResult>;
  /** (nonce, receive time) pairs since the last flush */
  flush(): Promise<Float64Array>;
  counters(): Counters;
  refresh(): Promise<Counters>;
  summary(committed: Record<string, number>): Promise<GeneratorSummary>;
  /** CPU ms per worker thread */
  workerCpuMs(): number[];
  close(): Promise<void>;
}

interface Lane {
  worker: Worker;
  counters: Counters;
  waiters: Map<string, (message: ToParent) => void>;
}

export async function startGenerator(options: { workers: number; urls: string[]; connectTimeoutMs?: number }): Promise<Generator> {
  const lanes: Lane[] = [];
  for (let i = 0; i < options.workers; i += 1) {
    const entry = new URL(`./worker${SOURCE_EXT}`, import.meta.url);
    const workerData = { urls: options.urls, connectTimeoutMs: options.connectTimeoutMs ?? 30_000 };
    // from source (tests), Node 20 does not apply tsx's hooks to a worker's entry: register them first
    const worker =
      SOURCE_EXT === ".ts"
        ? new Worker(`import("tsx/esm/api").then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}); });`, { eval: true, workerData })
        : new Worker(entry, { workerData });
    const lane: Lane = { worker, counters: { connected: 0, deliveries: 0, unexpectedCloses: 0, resumed: 0, cpuMs: 0 }, waiters: new Map() };
    worker.on("message", (message: ToParent) => {
      if ("connected" in message && typeof message.deliveries === "number") {
        const { connected, deliveries, unexpectedCloses, resumed, cpuMs } = message as Counters;
        lane.counters = { connected, deliveries, unexpectedCloses, resumed, cpuMs };
      }
      const waiter = lane.waiters.get(message.type);
      if (waiter) {
        lane.waiters.delete(message.type);
        waiter(message);
      }
    });
    lanes.push(lane);
  }
  const failures = lanes.map(
    (lane) =>
      new Promise<never>((_, reject) => {
        lane.worker.once("error", (error) => reject(new Error(`bench worker failed: ${error.stack ?? error.message}`, { cause: error })));
        lane.worker.once("exit", (code) => reject(new Error(`bench worker exited (${code})`)));
      }),
  );
  for (const failure of failures) failure.catch(() => undefined);
  const request = <T extends ToParent["type"]>(lane: Lane, message: ToWorker, reply: T) =>
    Promise.race([
      new Promise<Extract<ToParent, { type: T }>>((resolve) => {
        lane.waiters.set(reply, resolve as (m: ToParent) => void);
        lane.worker.postMessage(message);
      }),
      failures[lanes.indexOf(lane)]!,
    ]);
  await Promise.all(lanes.map((lane, i) => Promise.race([new Promise<void>((resolve) => lane.waiters.set("ready", () => resolve())), failures[i]!])));

  const counters = (): Counters => {
    const sum: Counters = { connected: 0, deliveries: 0, unexpectedCloses: 0, resumed: 0, cpuMs: 0 };
    for (const lane of lanes) for (const key of Object.keys(sum) as (keyof Counters)[]) sum[key] += lane.counters[key];
    return sum;
  };
  return {
    async connect(clients, concurrency) {
      const shares: ClientSpec[][] = lanes.map(() => []);
      clients.forEach((client, i) => shares[i % lanes.length]!.push(client));
      const perLane = Math.max(1, Math.ceil(concurrency / lanes.length));
      const started = Date.now();
      const results = await Promise.all(lanes.map((lane, i) => request(lane, { type: "connect", clients: shares[i]!, concurrency: perLane }, "connected")));
      const errors: Record<string, number> = {};
      for (const result of results) for (const [code, n] of Object.entries(result.errors)) errors[code] = (errors[code] ?? 0) + n;
      const connected = results.reduce((sum, r) => sum + r.connected, 0);
      const last = Math.max(...results.map((r) => r.lastConnectedAt));
      const durationMs = Math.max(1, last - started);
      return { connected, failed: results.reduce((sum, r) => sum + r.failed, 0), errors, durationMs, rate: (connected * 1000) / durationMs };
    },
    async flush() {
      const parts = await Promise.all(lanes.map((lane) => request(lane, { type: "flush" }, "samples")));
      const size = parts.reduce((sum, p) => sum + p.samples.length, 0);
      const out = new Float64Array(size);
      let offset = 0;
      for (const part of parts) {
        out.set(part.samples, offset);
        offset += part.samples.length;
      }
      return out;
    },
    counters,
    async refresh() {
      await Promise.all(lanes.map((lane) => request(lane, { type: "counters" }, "progress")));
      return counters();
    },
    async summary(committed) {
      const parts = await Promise.all(lanes.map((lane) => request(lane, { type: "summary", committed }, "summary")));
      const total = emptySummary();
      const perTicket: Record<string, DeliverySummary> = {};
      for (const part of parts) {
        addSummary(total, part.total);
        for (const [ticket, s] of Object.entries(part.perTicket)) addSummary((perTicket[ticket] ??= emptySummary()), s);
      }
      return {
        total,
        perTicket,
        pendingResume: parts.reduce((sum, p) => sum + p.pendingResume, 0),
        lastResumedAt: Math.max(0, ...parts.map((p) => p.lastResumedAt)),
      };
    },
    workerCpuMs: () => lanes.map((lane) => lane.counters.cpuMs),
    async close() {
      await Promise.all(
        lanes.map(async (lane) => {
          await Promise.race([request(lane, { type: "close" }, "closed"), new Promise((r) => setTimeout(r, 5000))]).catch(() => undefined);
          await lane.worker.terminate();
        }),
      );
    },
  };
}
