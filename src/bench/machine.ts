/** What a result file says about where it was measured: machine, software, commit. */
import { execFileSync } from "node:child_process";
import { cpus, loadavg, release, totalmem, type } from "node:os";
import { PACKAGE_ROOT } from "./options.js";

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGb: number;
  os: string;
  node: string;
  redis: string;
  commit: string;
  /** 1/5/15-minute load average when the run started: a shared machine's other work shows here */
  loadAverage: number[];
}

function tryExec(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: "utf8", cwd: PACKAGE_ROOT, stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return "unknown";
  }
}

export async function machineInfo(): Promise<MachineInfo> {
  // results written into bench/results do not make the code under test "modified"
  const dirty = tryExec("git", ["status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)bench/results"]);
  const commit = tryExec("git", ["rev-parse", "HEAD"]);
  return {
    cpuModel: cpus()[0]?.model ?? "unknown",
    cores: cpus().length,
    memoryGb: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    os: `${type()} ${release()}`,
    node: process.version,
    redis: tryExec("redis-server", ["--version"]).split(" ").find((w) => w.startsWith("v="))?.slice(2) ?? "unknown",
    commit: commit === "unknown" ? commit : `${commit}${dirty && dirty !== "unknown" ? " (modified)" : ""}`,
    loadAverage: loadavg().map((v) => Math.round(v * 100) / 100),
  };
}
