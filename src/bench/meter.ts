/**
 * CPU and memory of every process in a run, from /proc: where the cores went.
 * A snapshot is CPU ms per named process; a delta between two is that window's cost.
 */
import { cpuMs, rssBytes, treeCpuMs, treePssBytes } from "./procs.js";

export interface Watched {
  name: string;
  /** gateway, bare, redis, postgres, generator */
  role: string;
  pid: number;
  /** count the process's descendants too (PostgreSQL backends) */
  tree?: boolean;
}

export type CpuSnapshot = { at: number; ms: Record<string, number> };

export interface CpuUse {
  name: string;
  role: string;
  cpuMs: number;
  /** share of one core over the window, % */
  corePct: number;
}

export class Meter {
  private watched: Watched[] = [];
  constructor(private workerCpu: () => number[] = () => []) {}

  watch(process: Watched): void {
    this.watched = this.watched.filter((w) => w.name !== process.name).concat(process);
  }

  unwatch(name: string): void {
    this.watched = this.watched.filter((w) => w.name !== name);
  }

  setWorkerCpu(source: () => number[]): void {
    this.workerCpu = source;
  }

  snapshot(): CpuSnapshot {
    const ms: Record<string, number> = {};
    for (const w of this.watched) ms[w.name] = w.tree ? treeCpuMs(w.pid) : cpuMs(w.pid);
    ms["bench (all threads)"] = cpuMs(process.pid);
    this.workerCpu().forEach((v, i) => (ms[`generator worker ${i + 1}`] = v));
    return { at: Date.now(), ms };
  }

  roleOf(name: string): string {
    if (name.startsWith("generator") || name.startsWith("bench")) return "generator";
    return this.watched.find((w) => w.name === name)?.role ?? "other";
  }

  delta(from: CpuSnapshot, to: CpuSnapshot): CpuUse[] {
    const wall = Math.max(1, to.at - from.at);
    return Object.keys(to.ms)
      .filter((name) => Number.isFinite(from.ms[name]) && Number.isFinite(to.ms[name]))
      .map((name) => {
        const used = to.ms[name]! - from.ms[name]!;
        return { name, role: this.roleOf(name), cpuMs: used, corePct: (used / wall) * 100 };
      });
  }

  rss(name: string): number {
    const w = this.watched.find((x) => x.name === name);
    if (!w) return NaN;
    return w.tree ? treePssBytes(w.pid) : rssBytes(w.pid);
  }
}

/** CPU ms of one role in a delta */
export function roleCpu(use: CpuUse[], role: string): number {
  return use.filter((u) => u.role === role && !u.name.startsWith("generator worker")).reduce((sum, u) => sum + u.cpuMs, 0);
}
