/** The end of a run: the table on stdout (or the JSON with --json), and --out DIR's files. */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { renderChart } from "./chart.js";
import type { BenchOptions } from "./options.js";
import { renderCapacity, renderCpu, renderLoad, renderWriters } from "./report.js";
import type { BenchResult } from "./run-bench.js";

export function printResult(result: BenchResult, options: BenchOptions): void {
  if (options.json) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return;
  }
  const m = result.machine;
  const parts = [`\n${options.command}\n${m.cores} × ${m.cpuModel}, ${m.memoryGb} GB, ${m.os}, node ${m.node}, commit ${m.commit}, load average at start ${m.loadAverage?.join(" ")}\n`];
  if (result.writers) parts.push(renderWriters(result.writers));
  if (result.gateway || result.bare) {
    parts.push(`scenario ${options.scenario}: ${options.clients} clients, ${options.tickets} tickets, ${options.url ? `${options.url.length} URL(s) of a running deployment` : `${options.instances} instance(s)`}`);
    parts.push(renderLoad(result.gateway, result.bare));
    if (result.gateway) parts.push(renderCpu("CPU per process, gateway run (load window, then connect phase)", result.gateway));
    if (result.bare) parts.push(renderCpu("CPU per process, bare run", result.bare));
  }
  if (result.capacity) parts.push(renderCapacity(result.capacity));
  process.stdout.write(`${parts.join("\n\n")}\n`);
}

export async function writeOut(result: BenchResult, dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const json = join(dir, "result.json");
  await writeFile(json, `${JSON.stringify(result, null, 2)}\n`);
  const files = [json];
  const targets = [result.gateway, result.bare].filter((t) => t !== undefined);
  if (targets.length > 0) {
    const chart = join(dir, "chart.svg");
    await writeFile(chart, renderChart(targets, `${result.command} — ${result.machine.cores} × ${result.machine.cpuModel}, commit ${result.machine.commit.slice(0, 12)}, ${result.startedAt}`));
    files.push(chart);
  }
  return files;
}
