/**
 * Child processes the bench owns, and what /proc says about them. Each child gets its own
 * process group (so a terminal's Ctrl-C reaches only the bench, which then stops them in order)
 * and is killed by group, so nothing it forked outlives the run.
 */
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

export interface OwnedProcess {
  name: string;
  child: ChildProcess;
  pid: number;
  output: string[];
  exited: Promise<number | string>;
  /** resolves with the first line matching `test` (or rejects if the process exits first) */
  waitForLine(test: (line: string) => boolean, timeoutMs: number): Promise<string>;
  /** signal the whole group; resolves when the process has exited (SIGKILL after `graceMs`) */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

const owned = new Set<OwnedProcess>();

/** Call `onLine` for every line a child writes to stdout and stderr (the last one even without "\n"). */
export function forEachLine(child: ChildProcess, onLine: (line: string) => void): void {
  for (const stream of [child.stdout, child.stderr]) {
    if (!stream) continue;
    let buffer = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => {
      buffer += chunk;
      let index;
      while ((index = buffer.indexOf("\n")) >= 0) {
        onLine(buffer.slice(0, index));
        buffer = buffer.slice(index + 1);
      }
    });
    stream.on("end", () => buffer && onLine(buffer));
  }
}

export function spawnOwned(name: string, command: string, args: string[], options: SpawnOptions = {}): OwnedProcess {
  const child = spawn(command, args, { ...options, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  const output: string[] = [];
  const listeners = new Set<(line: string) => void>();
  const exited = new Promise<number | string>((resolve) => {
    child.once("exit", (code, signal) => resolve(code ?? signal ?? -1));
    child.once("error", (error) => {
      output.push(`spawn failed: ${error.message}`);
      resolve(-1);
    });
  });
  forEachLine(child, (line) => {
    output.push(line);
    if (output.length > 200) output.shift();
    for (const listener of listeners) listener(line);
  });
  const handle: OwnedProcess = {
    name,
    child,
    pid: child.pid ?? -1,
    output,
    exited,
    waitForLine(test, timeoutMs) {
      return new Promise((resolve, reject) => {
        const found = output.find(test);
        if (found !== undefined) return resolve(found);
        const timer = setTimeout(() => done(new Error(`${name} did not start within ${timeoutMs}ms:\n${output.slice(-15).join("\n")}`)), timeoutMs);
        const listener = (line: string) => test(line) && done(undefined, line);
        const done = (error?: Error, line?: string) => {
          clearTimeout(timer);
          listeners.delete(listener);
          if (error) reject(error);
          else resolve(line!);
        };
        listeners.add(listener);
        void exited.then((code) => done(new Error(`${name} exited (${code}) before starting:\n${output.slice(-15).join("\n")}`)));
      });
    },
    async stop(signal = "SIGTERM", graceMs = 10_000) {
      if (child.exitCode === null && child.signalCode === null) {
        killGroup(handle.pid, signal);
        const timer = setTimeout(() => killGroup(handle.pid, "SIGKILL"), graceMs);
        await exited;
        clearTimeout(timer);
      }
      // whatever the leader forked (PostgreSQL backends) goes with it
      killGroup(handle.pid, "SIGKILL");
      owned.delete(handle);
    },
  };
  owned.add(handle);
  return handle;
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  if (pid <= 0) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/** last resort on exit: SIGKILL every group still running (synchronous, for process.on('exit')) */
export function killAllOwnedSync(): void {
  for (const proc of owned) killGroup(proc.pid, "SIGKILL");
  owned.clear();
}

export function ownedCount(): number {
  return owned.size;
}

const CLOCK_TICKS = 100;

/** utime+stime of one process in ms (NaN when it is gone) */
export function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

function parentOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return -1;
  }
}

/** the process and every descendant (PostgreSQL: the postmaster and its backends) */
export function treePids(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    const parent = parentOf(pid);
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent)!.push(pid);
  }
  const out: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    out.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return out;
}

/** CPU ms of a process tree; exited backends' time is lost, so short-lived children undercount slightly */
export function treeCpuMs(root: number): number {
  return treePids(root).reduce((sum, pid) => sum + (cpuMs(pid) || 0), 0);
}

/** VmRSS in bytes (NaN when unreadable) */
export function rssBytes(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** proportional set size of a process tree: shared memory (PostgreSQL's buffers) counted once */
export function treePssBytes(root: number): number {
  let sum = 0;
  for (const pid of treePids(root)) {
    try {
      const match = /\nPss:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"));
      if (match) sum += Number(match[1]) * 1024;
    } catch {
      // gone, or not ours to read
    }
  }
  return sum;
}
