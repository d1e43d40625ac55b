/**
 * A real Redis Cluster from the machine's redis-server binaries: N masters (and optionally one
 * replica each) on free ports, data and nodes.conf in a temp dir, joined by
 * `redis-cli --cluster create`, ready once every node reports cluster_state:ok. Removed afterwards
 * (processes killed, temp dir deleted).
 *
 * `startRedisCluster()` belongs to one test (stopped by its cleanup); `sharedRedisCluster()` is one
 * cluster for the whole run (started on first use, stopped by the root afterAll hook), so the
 * suites that merely run against a cluster pay its start once; tests share it through key prefixes.
 */
import { stopChild } from "./redis-server.js";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Cluster, Redis } from "ioredis";
import { freePort } from "../../src/free-port.js";
import { onCleanup, track } from "./cleanup.js";

const run = promisify(execFile);

export interface ClusterNode {
  port: number;
  /** SIGKILL (default) or SIGTERM the node; its nodes.conf stays, so start() rejoins the cluster */
  stop(signal?: NodeJS.Signals): Promise<void>;
  start(): Promise<void>;
  running(): boolean;
}

export interface RedisClusterServer {
  nodes: ClusterNode[];
  /** the seed list for REDIS_URL (REDIS_CLUSTER=true) */
  url: string;
  /** the node currently serving `key`'s slot as master */
  masterOf(key: string): Promise<ClusterNode>;
  /** every node that is up reports cluster_state:ok */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** an ioredis Cluster client for assertions (closed by the test's cleanup) */
  client(): Cluster;
  close(): Promise<void>;
}

export interface RedisClusterOptions {
  masters?: number;
  /** replicas per master. @default 0 */
  replicas?: number;
  /** cluster-node-timeout: how fast a dead master is failed over. @default 1000 */
  nodeTimeoutMs?: number;
}

async function info(port: number): Promise<string | undefined> {
  const client = new Redis({ port, host: "127.0.0.1", lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 1000 });
  client.on("error", () => undefined);
  try {
    await client.connect();
    return (await client.cluster("INFO")) as string;
  } catch {
    return undefined;
  } finally {
    client.disconnect();
  }
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`redis cluster: timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export async function startRedisCluster(options: RedisClusterOptions = {}): Promise<RedisClusterServer> {
  const server = await launch(options);
  onCleanup("redis cluster", () => server.close());
  return server;
}

let shared: Promise<RedisClusterServer> | undefined;

export function sharedRedisCluster(): Promise<RedisClusterServer> {
  shared ??= launch({}, false);
  return shared;
}

export async function stopSharedRedisCluster(): Promise<void> {
  const cluster = shared;
  shared = undefined;
  await (await cluster?.catch(() => undefined))?.close();
}

async function launch(options: RedisClusterOptions, tracked = true): Promise<RedisClusterServer> {
  const masters = options.masters ?? 3;
  const replicas = options.replicas ?? 0;
  const dir = mkdtempSync(join(tmpdir(), "rg-redis-cluster-"));
  const nodes: ClusterNode[] = [];
  const clients: Cluster[] = [];
  for (let i = 0; i < masters * (1 + replicas); i++) {
    const port = await freePort();
    // the cluster bus defaults to port + 10000, which may be taken or out of range
    const busPort = await freePort();
    let child: ChildProcess | undefined;
    let untrack: (() => void) | undefined;
    const node: ClusterNode = {
      port,
      running: () => !!child && child.exitCode === null && child.signalCode === null,
      async start() {
        child = spawn(
          "redis-server",
          [
            "--port", String(port), "--cluster-port", String(busPort), "--bind", "127.0.0.1", "--dir", dir,
            "--cluster-enabled", "yes", "--cluster-config-file", `nodes-${port}.conf`,
            "--cluster-node-timeout", String(options.nodeTimeoutMs ?? 1000),
            "--save", "", "--appendonly", "no", "--protected-mode", "no",
            // a replica fails over however long it was cut off from its master (test data is disposable)
            "--cluster-replica-validity-factor", "0", "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0",
          ],
          { stdio: "ignore" },
        );
        if (tracked) untrack = track(`redis cluster node ${port}`);
        await until(async () => (await info(port)) !== undefined, `node ${port} to start`, 10_000);
      },
      async stop(signal = "SIGKILL") {
        if (await stopChild(child, signal)) untrack?.();
      },
    };
    nodes.push(node);
  }
  const server: RedisClusterServer = {
    nodes,
    url: nodes.slice(0, masters).map((n) => `redis://127.0.0.1:${n.port}`).join(","),
    async masterOf(key) {
      const client = server.client();
      const slot = Number(await client.cluster("KEYSLOT", key));
      const ranges = (await client.cluster("SLOTS")) as unknown as Array<[number, number, [string, number]]>;
      const range = ranges.find(([from, to]) => slot >= from && slot <= to)!;
      return nodes.find((n) => n.port === Number(range[2][1]))!;
    },
    async waitHealthy(timeoutMs = 30_000) {
      await until(
        async () => {
          const states = await Promise.all(nodes.filter((n) => n.running()).map((n) => info(n.port)));
          return states.every((s) => s?.includes("cluster_state:ok"));
        },
        "cluster_state:ok on every node",
        timeoutMs,
      );
    },
    client() {
      const client = new Cluster(nodes.slice(0, masters).map((n) => ({ host: "127.0.0.1", port: n.port })), {
        redisOptions: { maxRetriesPerRequest: 1, connectTimeout: 2000 },
        clusterRetryStrategy: (times) => Math.min(100 * times, 1000),
      });
      client.on("error", () => undefined);
      clients.push(client);
      onCleanup("redis cluster client", () => client.disconnect());
      return client;
    },
    async close() {
      for (const client of clients.splice(0)) client.disconnect();
      await Promise.all(nodes.map((n) => n.stop()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await Promise.all(nodes.map((n) => n.start()));
    await run("redis-cli", ["--cluster", "create", ...nodes.map((n) => `127.0.0.1:${n.port}`), "--cluster-replicas", String(replicas), "--cluster-yes"], {
      timeout: 30_000,
    });
    await server.waitHealthy();
  } catch (error) {
    await server.close();
    throw error;
  }
  return server;
}
