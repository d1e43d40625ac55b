/**
 * The bench command keeps working: a small run against both targets (the gateway built from this
 * checkout, run from source here, and the bare baseline) to the end, with --out; a Ctrl-C in the
 * middle leaves nothing running; bad flags fail with one line. Not a timed test: no figure is asserted.
 */
import { expect } from "chai";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { onCleanup } from "./support/cleanup.js";
import { startCluster } from "./support/cluster.js";
import { TEST_JWT_SECRET } from "./support/env.js";
import { ROOT } from "./support/process.js";

interface Run {
  code: number | string;
  stdout: string;
  stderr: string;
}

function runBench(args: string[], options: { onStderr?: (text: string, kill: (s: NodeJS.Signals) => void) => void } = {}): Promise<Run> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli.ts", "bench", ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  onCleanup(`bench ${child.pid}`, () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
  child.stderr.setEncoding("utf8").on("data", (c: string) => {
    stderr += c;
    options.onStderr?.(stderr, (s) => child.kill(s));
  });
  return new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code: code ?? signal ?? -1, stdout, stderr })));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** children are reaped by the bench before it exits; give the kernel a moment to drop zombies of others */
async function gone(pids: number[], timeoutMs = 10_000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let left = pids.filter(alive);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    left = left.filter(alive);
  }
  return left;
}

describe("bench command (smoke)", function () {
  this.timeout(120_000);

  it("runs a small steady load against the gateway and bare Socket.IO, prints the table and writes --out", async () => {
    const out = mkdtempSync(join(tmpdir(), "rg-bench-out-"));
    onCleanup(`rm ${out}`, () => rmSync(out, { recursive: true, force: true }));
    const run = await runBench(["--clients", "200", "--tickets", "20", "--rate", "80", "--duration", "1s", "--instances", "2", "--workers", "2", "--out", out]);
    expect(run.code, run.stderr).to.equal(0);
    expect(run.stdout).to.match(/\| latency p99 \(ms\)\s+\|/);
    expect(run.stdout).to.match(/gateway\/bare/);
    expect(run.stdout).to.match(/capacity model/);
    const result = JSON.parse(readFileSync(join(out, "result.json"), "utf8"));
    for (const target of [result.gateway, result.bare]) {
      expect(target.connect.connected, target.kind).to.equal(200);
      const step = target.steps[0];
      expect(step.committed, target.kind).to.equal(80);
      // 80 events into 20 tickets of 10 subscribers each
      expect(step.delivery.expected, target.kind).to.equal(800);
      expect(step.delivery, target.kind).to.include({ lost: 0, duplicates: 0, outOfOrder: 0, phantom: 0 });
      expect(step.latency.count, target.kind).to.equal(800);
    }
    expect(result.capacity.sizes.map((s: { users: number }) => s.users)).to.deep.equal([1000, 10000, 100000]);
    const svg = readFileSync(join(out, "chart.svg"), "utf8");
    expect(svg).to.match(/^<svg /).and.not.match(/<script|https?:\/\/(?!www\.w3\.org)/);
    expect(await gone(result.processes.map((p: { pid: number }) => p.pid))).to.deep.equal([]);
  });

  it("targets a running deployment with --url and --database-url", async () => {
    const cluster = await startCluster(1, { env: { EVENT_RATE_PER_SOCKET: "0" } });
    const run = await runBench([
      "--url", cluster.urls[0]!, "--database-url", cluster.databaseUrl, "--jwt-secret", TEST_JWT_SECRET,
      "--clients", "100", "--tickets", "10", "--rate", "20", "--duration", "2s", "--no-bare", "--json", "--quiet",
    ]);
    expect(run.code, run.stderr).to.equal(0);
    const result = JSON.parse(run.stdout);
    expect(result.target).to.equal("remote");
    expect(result.bare).to.equal(undefined);
    // a remote deployment's processes are not the bench's: nothing of its own was started
    expect(result.processes).to.deep.equal([]);
    expect(result.gateway.connect.connected).to.equal(100);
    expect(result.gateway.steps[0].delivery).to.include({ expected: 400, lost: 0, duplicates: 0, outOfOrder: 0 });
  });

  it("on Ctrl-C stops everything it started and exits 130", async () => {
    const pids = new Set<number>();
    let sent = false;
    const run = await runBench(["--clients", "100", "--tickets", "10", "--rate", "20", "--duration", "60s", "--instances", "1", "--no-bare"], {
      onStderr(text, kill) {
        for (const m of text.matchAll(/started \S+ pid (\d+)/g)) pids.add(Number(m[1]));
        // interrupt while the clients connect: gateway, PostgreSQL and Redis are all up
        if (!sent && /gateway: connecting/.test(text)) {
          sent = true;
          kill("SIGINT");
        }
      },
    });
    expect(sent, run.stderr).to.equal(true);
    expect(run.code, run.stderr).to.equal(130);
    expect(pids.size, run.stderr).to.equal(3);
    expect(await gone([...pids])).to.deep.equal([]);
  });

  it("refuses a bad flag with one line that names it", async () => {
    const run = await runBench(["--clients", "lots"]);
    expect(run.code).to.equal(2);
    expect(run.stderr.trim()).to.equal("realtime-gateway bench: --clients must be a number >= 1 (got lots)");
  });
});
