/**
 * One bench run: start (or reach) what the scenario needs, run it against the gateway and the bare
 * baseline one after the other (so neither shares the cores with the other), and gather the figures.
 */
import { randomBytes } from "node:crypto";
import { mintToken } from "../auth/jwt.js";
import { capacityModel, loadPrices, measure, type CapacityModel } from "./capacity.js";
import type { CleanupStack } from "./cleanup.js";
import { migrateDatabase, startBare, startGateway, type Instance } from "./gateways.js";
import { Meter } from "./meter.js";
import { publicOptions, type BenchOptions } from "./options.js";
import type { Progress } from "./progress.js";
import { barePublisher, pgPublisher } from "./publishers.js";
import { runLoad, type LoadPlan, type TargetResult } from "./run-load.js";
import { startPostgres, startRedis } from "./services.js";
import { dropWriters, prepareWriters, runWriters, type WriterPhase } from "./writers.js";
import { machineInfo, type MachineInfo } from "./machine.js";

export interface BenchResult {
  command: string;
  startedAt: string;
  finishedAt: string;
  machine: MachineInfo;
  options: BenchOptions;
  target: "local" | "remote";
  gateway?: TargetResult;
  bare?: TargetResult;
  writers?: WriterPhase[];
  capacity?: CapacityModel;
  memory: { redisBytes: number; postgresBytes: number };
  /** every process the bench started, so a reader (and the smoke test) can check none is left */
  processes: { name: string; pid: number }[];
}

export async function runBench(options: BenchOptions, stack: CleanupStack, progress: Progress): Promise<BenchResult> {
  const startedAt = new Date().toISOString();
  const meter = new Meter();
  const processes: { name: string; pid: number }[] = [];
  const started = (name: string, pid: number, where: string) => {
    processes.push({ name, pid });
    progress.log(`started ${name} pid ${pid} (${where})`);
  };
  const remote = options.url !== undefined;
  const run = randomBytes(4).toString("hex");
  const base = 1e9 + Math.floor(Math.random() * 8e9);
  // numeric ticket ids, unique to this run: a shared database keeps other runs' tickets apart
  const tickets = Array.from({ length: options.tickets }, (_, i) => String(base * 1000 + i));
  const secret = remote ? options.jwtSecret! : randomBytes(24).toString("hex");
  const memory = { redisBytes: NaN, postgresBytes: NaN };

  // the bench's own Redis: for the gateways it starts and for the bare pair (a remote deployment has its own)
  let redisUrl = "";
  if (!remote || options.bare) {
    progress.phase("starting redis-server");
    const redis = await startRedis();
    stack.defer("redis-server", () => redis.stop());
    meter.watch({ name: "redis-server", role: "redis", pid: redis.proc.pid });
    started("redis-server", redis.proc.pid, redis.url);
    redisUrl = redis.url;
  }

  let databaseUrl = options.databaseUrl;
  const needsDatabase = options.gateway || options.scenario === "writers";
  if (!remote && needsDatabase) {
    progress.phase("starting PostgreSQL (wal_level=logical)");
    const postgres = await startPostgres({ maxConnections: Math.max(200, options.writers + options.pool + 100) });
    stack.defer("postgres", () => postgres.stop());
    meter.watch({ name: "postgres", role: "postgres", pid: postgres.proc.pid, tree: true });
    databaseUrl = postgres.url;
    started("postgres", postgres.proc.pid, postgres.url);
    progress.phase("realtime-gateway migrate");
    await migrateDatabase(databaseUrl);
  }

  const gatewayEnv = { databaseUrl: databaseUrl!, redisUrl, jwtSecret: secret, redisPrefix: `bench-${run}`, cpuProf: options.cpuProf };
  const startGateways = async (): Promise<Instance[]> => {
    progress.phase(`starting ${options.instances} gateway instance(s)`);
    const instances = await Promise.all(Array.from({ length: options.instances }, (_, i) => startGateway(i, gatewayEnv)));
    for (const instance of instances) {
      stack.defer(instance.name, () => instance.proc.stop("SIGTERM", 5000));
      meter.watch({ name: instance.name, role: "gateway", pid: instance.proc.pid });
      started(instance.name, instance.proc.pid, instance.url);
    }
    return instances;
  };
  const stopAll = async (instances: Instance[]) => {
    await Promise.all(instances.map((instance) => stack.release(instance.name)));
    for (const instance of instances) meter.unwatch(instance.name);
  };

  const result: BenchResult = { command: options.command, startedAt, finishedAt: "", machine: await machineInfo(), options: publicOptions(options), target: remote ? "remote" : "local", memory, processes };

  if (options.scenario === "writers") {
    result.writers = await writersScenario(options, databaseUrl!, tickets, remote, startGateways, stopAll, progress, stack);
    result.finishedAt = new Date().toISOString();
    return result;
  }

  const plan = (instances: Instance[] | undefined): LoadPlan => ({
    clients: options.clients,
    tickets,
    publishTo: tickets,
    steps:
      options.scenario === "ramp"
        ? options.steps.map((rate) => ({ rate, durationMs: options.stepDurationMs }))
        : [{ rate: options.rate, durationMs: options.durationMs }],
    workers: options.workers,
    connectConcurrency: options.connectConcurrency,
    stopWhen: options.scenario === "ramp" ? { p99Ms: options.p99LimitMs } : undefined,
    kill:
      options.scenario === "storm" && instances && instances.length > 1
        ? { afterMs: options.killAfterMs, instance: 1, run: () => instances[1]!.proc.stop("SIGKILL") }
        : undefined,
  });

  if (options.gateway) {
    const instances = remote ? [] : await startGateways();
    const publisher = pgPublisher(databaseUrl!, options.pool);
    stack.defer("writers pool", () => publisher.close());
    const urls = remote ? options.url! : instances.map((i) => i.url);
    if (remote && options.scenario === "storm") progress.log("storm against --url: nothing is killed by the bench; kill an instance yourself during the run");
    result.gateway = await runLoad(
      {
        kind: "gateway",
        urls,
        instances: instances.map((i) => i.name),
        publisher,
        token: (i, t) => mintToken(secret, { sub: `bench-${run}-${i}`, name: `bench ${i}`, role: "agent", tickets: t, ttlSeconds: 3 * 3600 }),
      },
      plan(remote ? undefined : instances),
      meter,
      progress,
    );
    memory.redisBytes = meter.rss("redis-server");
    memory.postgresBytes = meter.rss("postgres");
    await stack.release("writers pool");
    await stopAll(instances);
  }

  if (options.bare) {
    progress.phase(`starting ${options.instances} bare Socket.IO + redis-adapter server(s)`);
    const bare = await Promise.all(Array.from({ length: options.instances }, (_, i) => startBare(i, redisUrl, `bench-bare-${run}`, options.cpuProf)));
    for (const instance of bare) {
      stack.defer(instance.name, () => instance.proc.stop("SIGTERM", 5000));
      meter.watch({ name: instance.name, role: "bare", pid: instance.proc.pid });
      started(instance.name, instance.proc.pid, instance.url);
    }
    const publisher = await barePublisher(bare[0]!.url);
    stack.defer("bare driver", () => publisher.close());
    result.bare = await runLoad({ kind: "bare", urls: bare.map((b) => b.url), instances: bare.map((b) => b.name), publisher }, plan(bare), meter, progress);
    await stack.release("bare driver");
    await stopAll(bare);
  }

  if (result.gateway && !remote) {
    const measured = measure(result.gateway, options.tickets, memory);
    if (measured) result.capacity = capacityModel(measured, options.modelRatePer1000, loadPrices(options.prices));
  }
  result.finishedAt = new Date().toISOString();
  return result;
}

async function writersScenario(
  options: BenchOptions,
  databaseUrl: string,
  tickets: string[],
  remote: boolean,
  startGateways: () => Promise<Instance[]>,
  stopAll: (instances: Instance[]) => Promise<void>,
  progress: Progress,
  stack: CleanupStack,
): Promise<WriterPhase[]> {
  await prepareWriters(databaseUrl);
  stack.defer("plain table", () => dropWriters(databaseUrl));
  const phases: WriterPhase[] = [];
  const both = async (gatewayRunning: boolean) => {
    for (const mode of ["publish_ticket_event", "plain INSERT"] as const) {
      const phase = await runWriters({ url: databaseUrl, mode, gatewayRunning, writers: options.writers, tickets, durationMs: options.durationMs, progress });
      progress.log(`writers: ${mode}${gatewayRunning ? " (gateway running)" : ""}: ${phase.commitsPerSec.toFixed(0)} commits/s, p99 ${phase.latency.p99.toFixed(2)} ms`);
      phases.push(phase);
    }
  };
  if (!remote) await both(false);
  const instances = remote || !options.gateway ? [] : await startGateways();
  if (remote || instances.length > 0) await both(true);
  await stopAll(instances);
  return phases;
}
