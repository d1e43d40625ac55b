/**
 * The systems under test as child processes: gateway instances (`cli.js serve`, the build of this
 * checkout) and the bare Socket.IO + redis-adapter pair they are compared with.
 */
import { fileURLToPath } from "node:url";
import { spawnOwned, type OwnedProcess } from "./procs.js";
import { nodeArgs, SOURCE_EXT } from "./runtime.js";

const CLI = fileURLToPath(new URL(`../cli${SOURCE_EXT}`, import.meta.url));
const BARE = fileURLToPath(new URL(`./bare-server${SOURCE_EXT}`, import.meta.url));

export interface Instance {
  name: string;
  url: string;
  port: number;
  proc: OwnedProcess;
}

function baseEnv(): Record<string, string> {
  return { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", NODE_ENV: "production" };
}

async function started(proc: OwnedProcess, test: (record: Record<string, unknown>) => boolean, timeoutMs = 60_000): Promise<Record<string, unknown>> {
  const line = await proc.waitForLine((l) => {
    if (!l.startsWith("{")) return false;
    try {
      return test(JSON.parse(l) as Record<string, unknown>);
    } catch {
      return false;
    }
  }, timeoutMs);
  return JSON.parse(line) as Record<string, unknown>;
}

/**
 * node flags for a profiled child: its CPU profile lands in `dir` on exit (SIGTERM drains, then
 * exits), named after the child, and a SIGUSR2 writes a heap snapshot there (`kill -USR2 PID`)
 */
export function profileArgs(name: string, dir: string | undefined): string[] {
  return dir ? ["--cpu-prof", `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${name}.cpuprofile`, "--heapsnapshot-signal=SIGUSR2", `--diagnostic-dir=${dir}`] : [];
}

export interface GatewayEnv {
  databaseUrl: string;
  redisUrl: string;
  jwtSecret: string;
  redisPrefix: string;
  extra?: Record<string, string>;
  /** --cpu-prof DIR */
  cpuProf?: string;
}

export async function startGateway(index: number, env: GatewayEnv): Promise<Instance> {
  const name = `gateway-${index + 1}`;
  const proc = spawnOwned(name, process.execPath, [...nodeArgs(), ...profileArgs(name, env.cpuProf), CLI, "serve"], {
    env: {
      ...baseEnv(),
      PORT: "0",
      HOST: "127.0.0.1",
      METRICS_PORT: "0",
      DATABASE_URL: env.databaseUrl,
      REDIS_URL: env.redisUrl,
      REDIS_PREFIX: env.redisPrefix,
      JWT_SECRET: env.jwtSecret,
      INSTANCE_ID: name,
      LOG_LEVEL: "info",
      // the bench's clients all come from 127.0.0.1: per-IP limits would refuse them, per-socket ones would throttle subscribes
      MAX_CONNECTIONS_PER_IP: "100000000",
      CONNECTION_RATE_PER_IP: "0",
      MAX_CONNECTIONS: "0",
      EVENT_RATE_PER_SOCKET: "0",
      SHUTDOWN_GRACE_MS: "2000",
      MIGRATE_ON_START: "false",
      DEMO_UI: "false",
      ...env.extra,
    },
  });
  try {
    const record = await started(proc, (r) => typeof r.msg === "string" && r.msg.startsWith("gateway started") && typeof r.port === "number");
    const port = record.port as number;
    return { name, url: `http://127.0.0.1:${port}`, port, proc };
  } catch (error) {
    await proc.stop("SIGKILL");
    throw error;
  }
}

export async function startBare(index: number, redisUrl: string, prefix: string, cpuProf?: string): Promise<Instance> {
  const name = `bare-${index + 1}`;
  const proc = spawnOwned(name, process.execPath, [...nodeArgs(), ...profileArgs(name, cpuProf), BARE], {
    env: { ...baseEnv(), PORT: "0", REDIS_URL: redisUrl, REDIS_PREFIX: prefix },
  });
  try {
    const record = await started(proc, (r) => r.msg === "bare started");
    const port = record.port as number;
    return { name, url: `http://127.0.0.1:${port}`, port, proc };
  } catch (error) {
    await proc.stop("SIGKILL");
    throw error;
  }
}

/** run the migrations of this build against `databaseUrl` */
export async function migrateDatabase(databaseUrl: string): Promise<void> {
  const proc = spawnOwned("migrate", process.execPath, [...nodeArgs(), CLI, "migrate"], {
    env: { ...baseEnv(), DATABASE_URL: databaseUrl, LOG_LEVEL: "warn" },
  });
  const code = await proc.exited;
  await proc.stop();
  if (code !== 0) throw new Error(`realtime-gateway migrate failed (${code}):\n${proc.output.slice(-15).join("\n")}`);
}
