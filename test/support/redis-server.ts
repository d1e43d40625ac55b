/**
 * A private redis-server on a free port, for tests that stop and restart Redis (the shared one at
 * 6379 is never touched). Restart keeps the port, as a Redis restart in production keeps its address.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { Redis } from "ioredis";
import { onCleanup, track } from "./cleanup.js";
import { freePort } from "../../src/free-port.js";

export interface RedisServer {
  port: number;
  url: string;
  stop(signal?: NodeJS.Signals): Promise<void>;
  start(): Promise<void>;
}


async function ping(port: number): Promise<boolean> {
  const client = new Redis({ port, host: "127.0.0.1", lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
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

export async function startRedisServer(): Promise<RedisServer> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  let untrack: (() => void) | undefined;
  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    async start() {
      child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
      untrack = track(`redis-server ${port}`);
      const deadline = Date.now() + 10_000;
      while (!(await ping(port))) {
        if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not start`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    async stop(signal = "SIGKILL") {
      const running = child;
      if (!running || running.exitCode !== null || running.signalCode !== null) return;
      const exited = new Promise((resolve) => running.once("exit", resolve));
      running.kill(signal);
      await exited;
      untrack?.();
    },
  };
  await server.start();
  onCleanup(`redis-server ${port}`, () => server.stop());
  return server;
}
