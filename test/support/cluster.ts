/**
 * `startCluster(n)`: n real gateways in this process on free ports, sharing one test database and
 * one Redis key prefix (unique per cluster), stopped after the test.
 */
import { randomBytes } from "node:crypto";
import { loadConfig } from "../../src/config.js";
import { createGateway, type Gateway } from "../../src/gateway.js";
import { createLogger } from "../../src/logger.js";
import { onCleanup, track } from "./cleanup.js";
import { createTestDatabase } from "./db.js";
import { TEST_JWT_SECRET, TEST_LOG_LEVEL, TEST_REDIS_URL } from "./env.js";
import { eventSourceEnv } from "./event-sources.js";
import { sharedRedisCluster } from "./redis-cluster.js";

/** "redis-cluster": the sharded adapter on a real Redis Cluster (the shared one unless `redisUrl`) */
export type ClusterMode = "classic" | "sharded" | "single" | "redis-cluster";

export interface ClusterOptions {
  mode?: ClusterMode;
  /** extra environment for every instance */
  env?: Record<string, string>;
  /** an existing database (default: a fresh one) */
  databaseUrl?: string;
  redisUrl?: string;
  prefix?: string;
}

export interface Cluster {
  gateways: Gateway[];
  urls: string[];
  databaseUrl: string;
  prefix: string;
  env: Record<string, string>;
  /** add one more instance with the same settings */
  add(extraEnv?: Record<string, string>): Promise<Gateway>;
  stop(): Promise<void>;
}

export function randomPrefix(): string {
  return `rgtest:${randomBytes(5).toString("hex")}`;
}

/** The environment an instance of a test cluster runs with (also used for child processes). */
export function clusterEnv(options: { mode: ClusterMode; databaseUrl: string; prefix: string; redisUrl?: string; env?: Record<string, string> }): Record<string, string> {
  return {
    PORT: "0",
    METRICS_PORT: "0",
    HOST: "127.0.0.1",
    DATABASE_URL: options.databaseUrl,
    JWT_SECRET: TEST_JWT_SECRET,
    LOG_LEVEL: TEST_LOG_LEVEL,
    SHUTDOWN_GRACE_MS: "2000",
    REDIS_PREFIX: options.prefix,
    MAX_CONNECTIONS_PER_IP: "0",
    CONNECTION_RATE_PER_IP: "0",
    ...eventSourceEnv(options.databaseUrl),
    ...redisEnv(options.mode, options.redisUrl),
    ...options.env,
  };
}

function redisEnv(mode: ClusterMode, redisUrl: string | undefined): Record<string, string> {
  if (mode === "single") return {};
  if (mode === "redis-cluster") {
    if (!redisUrl) throw new Error("a redis-cluster test cluster needs the cluster's seed list");
    return { REDIS_URL: redisUrl, REDIS_CLUSTER: "true", REDIS_ADAPTER: "sharded" };
  }
  return { REDIS_URL: redisUrl ?? TEST_REDIS_URL, REDIS_ADAPTER: mode };
}

/** The Redis URL for a mode: the shared Redis Cluster's seed list for "redis-cluster". */
export async function redisUrlFor(mode: ClusterMode, redisUrl?: string): Promise<string | undefined> {
  if (redisUrl || mode !== "redis-cluster") return redisUrl;
  return (await sharedRedisCluster()).url;
}

export async function startGateway(env: Record<string, string>): Promise<Gateway> {
  const config = loadConfig(env);
  const gateway = createGateway(config, { logger: createLogger(config.logLevel, { instanceId: config.instanceId }) });
  const untrack = track(`gateway ${config.instanceId}`);
  onCleanup(`gateway ${config.instanceId}`, async () => {
    await gateway.stop("test over", { force: true });
    untrack();
  });
  await gateway.start();
  return gateway;
}

export async function startCluster(n: number, options: ClusterOptions = {}): Promise<Cluster> {
  const mode = options.mode ?? "classic";
  if (mode === "single" && n > 1) throw new Error("a single-node cluster has one instance");
  const databaseUrl = options.databaseUrl ?? (await createTestDatabase());
  const prefix = options.prefix ?? randomPrefix();
  const redisUrl = await redisUrlFor(mode, options.redisUrl);
  const env = clusterEnv({ mode, databaseUrl, prefix, redisUrl, env: options.env });
  const gateways: Gateway[] = [];
  const cluster: Cluster = {
    gateways,
    get urls() {
      return gateways.map((g) => `http://127.0.0.1:${g.port}`);
    },
    databaseUrl,
    prefix,
    env,
    async add(extraEnv = {}) {
      const gateway = await startGateway({ ...env, INSTANCE_ID: `gw${gateways.length}-${prefix.slice(-4)}`, ...extraEnv });
      gateways.push(gateway);
      return gateway;
    },
    async stop() {
      await Promise.all(gateways.map((g) => g.stop("test over", { force: true })));
    },
  };
  for (let i = 0; i < n; i++) await cluster.add();
  return cluster;
}
