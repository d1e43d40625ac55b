/**
 * Gateways as real child processes, for what only a process can show: SIGKILL, SIGTERM drains,
 * exit codes, start-up failures. Each reports its ports through its JSON start-up log line.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { forEachLine } from "../../src/bench/procs.js";
import { onCleanup, track } from "./cleanup.js";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const MAIN = fileURLToPath(new URL("../../src/main.ts", import.meta.url));

export interface GatewayProcess {
  child: ChildProcess;
  port: number;
  metricsPort: number;
  url: string;
  /** every stdout/stderr line so far */
  output: string[];
  /** resolves with the exit code (or the signal name) */
  exited: Promise<number | string>;
  kill(signal?: NodeJS.Signals): void;
}

export interface SpawnOptions {
  /** resolve before the start-up line (for processes expected to fail) */
  waitForStart?: boolean;
  args?: string[];
  entry?: string;
  timeoutMs?: number;
  /** working directory (default: the repository) */
  cwd?: string;
}

/** Run `src/main.ts` (or `entry`) under tsx with exactly `env` (plus PATH/HOME). */
export async function spawnGateway(env: Record<string, string>, options: SpawnOptions = {}): Promise<GatewayProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", options.entry ?? MAIN, ...(options.args ?? [])], {
    cwd: options.cwd ?? ROOT,
    // the start-up log line carries the ports: a child logs at info at least
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env, LOG_LEVEL: ["debug", "trace"].includes(env.LOG_LEVEL ?? "") ? env.LOG_LEVEL! : "info" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const untrack = track(`process ${child.pid}`);
  const output: string[] = [];
  const exited = new Promise<number | string>((resolve) => {
    child.once("exit", (code, signal) => {
      untrack();
      resolve(code ?? signal ?? -1);
    });
  });
  onCleanup(`process ${child.pid}`, async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await exited;
    }
  });
  let started: (value: { port: number; metricsPort: number }) => void;
  const startedPromise = new Promise<{ port: number; metricsPort: number }>((resolve) => (started = resolve));
  const onLine = (line: string) => {
    output.push(line);
    if (process.env.TEST_CHILD_OUTPUT) process.stderr.write(`[${child.pid}] ${line}\n`);
    if (!line.startsWith("{")) return;
    try {
      const record = JSON.parse(line) as { port?: number; metricsPort?: number; msg?: string };
      if (typeof record.msg === "string" && record.msg.startsWith("gateway started") && record.port) {
        started({ port: record.port, metricsPort: record.metricsPort ?? -1 });
      }
    } catch {
      // not a JSON log line
    }
  };
  forEachLine(child, onLine);
  const handle: GatewayProcess = {
    child,
    port: -1,
    metricsPort: -1,
    url: "",
    output,
    exited,
    kill: (signal = "SIGTERM") => void child.kill(signal),
  };
  if (options.waitForStart === false) return handle;
  const timeoutMs = options.timeoutMs ?? 30_000;
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([
    startedPromise,
    exited.then((code) => {
      throw new Error(`gateway exited (${code}) before starting:\n${output.slice(-20).join("\n")}`);
    }),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`gateway did not start within ${timeoutMs}ms:\n${output.slice(-20).join("\n")}`)), timeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
  handle.port = result.port;
  handle.metricsPort = result.metricsPort;
  handle.url = `http://127.0.0.1:${result.port}`;
  return handle;
}

/** Wait until the process exits, or fail after `timeoutMs`. */
export async function waitExit(proc: GatewayProcess, timeoutMs = 30_000): Promise<number | string> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      proc.exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`process did not exit within ${timeoutMs}ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export { once };
