/**
 * A private redis-server on a free port, for tests that stop and restart Redis (the shared one at
 * 6379 is never touched). Restart keeps the port, as a Redis restart in production keeps its address.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { redisAnswers } from "../../src/bench/services.js";
import { onCleanup, track } from "./cleanup.js";
import { freePort } from "../../src/free-port.js";

export interface RedisServer {
  port: number;
  url: string;
  stop(signal?: NodeJS.Signals): Promise<void>;
  start(): Promise<void>;
}


/** Signal a child and wait for its exit; false when it was not running. */
export async function stopChild(child: ChildProcess | undefined, signal: NodeJS.Signals): Promise<boolean> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return false;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill(signal);
  await exited;
  return true;
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
      while (!(await redisAnswers(port))) {
        if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not start`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    async stop(signal = "SIGKILL") {
      if (await stopChild(child, signal)) untrack?.();
    },
  };
  await server.start();
  onCleanup(`redis-server ${port}`, () => server.stop());
  return server;
}
