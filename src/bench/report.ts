/** The table at the end of a run: one column per target, the gateway/bare ratio beside them. */
import type { CapacityModel } from "./capacity.js";
import { roleCpu } from "./meter.js";
import type { TargetResult } from "./run-load.js";
import type { WriterPhase } from "./writers.js";

type Row = [string, number | string | undefined, number | string | undefined, string?];

const num = (v: number | string | undefined, digits = 1): string => {
  if (v === undefined) return "—";
  if (typeof v === "string") return v;
  if (!Number.isFinite(v)) return "—";
  return Math.abs(v) >= 1000 ? Math.round(v).toLocaleString("en-US") : v.toFixed(digits).replace(/\.0+$/, "");
};

const ratio = (g: number | string | undefined, b: number | string | undefined) =>
  typeof g === "number" && typeof b === "number" && b > 0 && Number.isFinite(g) ? `${(g / b).toFixed(2)}×` : "";

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ")} |`;
  return [line(headers), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(line)].join("\n");
}

function rss(result?: TargetResult): number | undefined {
  if (!result) return undefined;
  const values = Object.values(result.rssPerConnection).map((r) => r.bytesPerConnection / 1024);
  return values.length ? values.reduce((a, b) => a + b, 0) / values.length : undefined;
}

function perInstance(result?: TargetResult): string | undefined {
  if (!result) return undefined;
  const values = Object.values(result.rssPerConnection).map((r) => (r.bytesPerConnection / 1024).toFixed(1));
  return values.length ? values.join(" / ") : undefined;
}

export function loadRows(gateway?: TargetResult, bare?: TargetResult): Row[] {
  const rows: Row[] = [];
  const g = gateway?.steps;
  const b = bare?.steps;
  rows.push(["connections reached", gateway?.connect.connected, bare?.connect.connected]);
  rows.push(["connect ramp (conn/s)", gateway?.connect.rate, bare?.connect.rate]);
  rows.push(["handshake errors", gateway?.connect.failed, bare?.connect.failed]);
  rows.push(["unexpected disconnects", gateway?.unexpectedDisconnects, bare?.unexpectedDisconnects]);
  rows.push(["RSS per connection (KB, mean of instances)", rss(gateway), rss(bare)]);
  rows.push(["RSS per connection per instance (KB)", perInstance(gateway), perInstance(bare), ""]);
  const steps = Math.max(g?.length ?? 0, b?.length ?? 0);
  for (let i = 0; i < steps; i += 1) {
    const gs = g?.[i];
    const bs = b?.[i];
    const rate = gs?.rate ?? bs?.rate;
    const p = steps > 1 ? `@${rate} ev/s ` : "";
    rows.push([`${p}events committed / sent`, gs?.committed, bs?.committed]);
    rows.push([`${p}rate reached by the writers (ev/s)`, gs?.achievedRate, bs?.achievedRate]);
    rows.push([`${p}latency p50 (ms)`, gs?.latency.p50, bs?.latency.p50]);
    rows.push([`${p}latency p90 (ms)`, gs?.latency.p90, bs?.latency.p90]);
    rows.push([`${p}latency p99 (ms)`, gs?.latency.p99, bs?.latency.p99]);
    rows.push([`${p}latency max (ms)`, gs?.latency.max, bs?.latency.max]);
    rows.push([`${p}deliveries/s`, gs?.deliveriesPerSec, bs?.deliveriesPerSec]);
    rows.push([`${p}lost / duplicated / out-of-order`, gs && `${gs.delivery.lost} / ${gs.delivery.duplicates} / ${gs.delivery.outOfOrder}`, bs && `${bs.delivery.lost} / ${bs.delivery.duplicates} / ${bs.delivery.outOfOrder}`]);
    rows.push([`${p}server CPU (% of a core)`, gs && cpuPct(gs.cpu, gs), bs && cpuPct(bs.cpu, bs)]);
  }
  if (gateway?.bestRate !== undefined || bare?.bestRate !== undefined || gateway?.steps.some((s) => s.passed !== undefined)) {
    rows.push(["highest rate reached with p99 < 100 ms, nothing lost (ev/s)", gateway?.bestRate ?? (gateway ? "none" : undefined), bare?.bestRate ?? (bare ? "none" : undefined)]);
  }
  if (gateway?.storm || bare?.storm) {
    rows.push(["storm: clients disconnected", gateway?.storm?.disconnected, bare?.storm?.disconnected]);
    rows.push(["storm: time until all resumed (ms)", gateway?.storm ? (gateway.storm.resumeMs ?? `${gateway.storm.pendingResume} never`) : undefined, bare?.storm ? (bare.storm.resumeMs ?? `${bare.storm.pendingResume} never`) : undefined]);
  }
  return rows;
}

function cpuPct(cpu: TargetResult["steps"][number]["cpu"], step: { rate: number }): number | undefined {
  void step;
  const server = cpu.filter((u) => u.role === "gateway" || u.role === "bare");
  // a remote deployment's processes are not ours to read
  return server.length ? server.reduce((s, u) => s + u.corePct, 0) : undefined;
}

export function renderLoad(gateway?: TargetResult, bare?: TargetResult): string {
  const rows = loadRows(gateway, bare).map(([name, g, b, note]) => [name, num(g), num(b), note ?? ratio(g, b)]);
  return table(["figure", "gateway", "bare Socket.IO", "gateway/bare"], rows);
}

export function renderCpu(title: string, result: TargetResult): string {
  const step = result.steps[0];
  if (!step) return "";
  const wall = step.cpu.length ? step.cpu : [];
  const rows = wall.map((u) => [u.name, u.role, num(u.cpuMs, 0), num(u.corePct)]);
  const connect = result.connect.cpu.map((u) => [`${u.name} (connect phase)`, u.role, num(u.cpuMs, 0), num(u.corePct)]);
  return `${title}\n${table(["process", "role", "CPU ms", "% of a core"], [...rows, ...connect])}`;
}

export function renderWriters(phases: WriterPhase[]): string {
  const rows = phases.map((p) => [
    `${p.mode}${p.gatewayRunning ? ", gateway running" : ", no gateway"}`,
    String(p.writers),
    num(p.commitsPerSec, 0),
    num(p.latency.p50, 2),
    num(p.latency.p99, 2),
    String(p.errors),
    Object.entries(p.waitEvents)
      .slice(0, 3)
      .map(([k, v]) => `${k} ${v}%`)
      .join(", "),
  ]);
  const out = [table(["writers", "N", "commits/s", "p50 ms", "p99 ms", "errors", "top wait events (share of active samples)"], rows)];
  for (const running of [false, true]) {
    const pub = phases.find((p) => p.mode === "publish_ticket_event" && p.gatewayRunning === running);
    const plain = phases.find((p) => p.mode === "plain INSERT" && p.gatewayRunning === running);
    if (pub && plain) out.push(`publish_ticket_event / plain INSERT, ${running ? "gateway running" : "no gateway"}: ${ratio(pub.commitsPerSec, plain.commitsPerSec)} commits/s, ${ratio(pub.latency.p99, plain.latency.p99)} p99`);
  }
  return out.join("\n");
}

export function renderCapacity(model: CapacityModel): string {
  const m = model.measured;
  const head = `capacity model (${model.eventsPerSecPer1000Users} events/s per 1,000 users, ${num(m.fanout)} subscribers per ticket as measured; prices: ${model.prices.name})
measured: gateway ${m.gatewayCpuMsPerDelivery.toFixed(4)} CPU ms per delivery, ${m.gatewayCpuMsPerConnect.toFixed(3)} CPU ms per connect, ${(m.gatewayBytesPerConnection / 1024).toFixed(1)} KB per connection; redis ${m.redisCpuMsPerEvent.toFixed(3)} and postgres ${m.postgresCpuMsPerEvent.toFixed(3)} CPU ms per event`;
  const rows = model.sizes.map((s) => [
    s.users.toLocaleString("en-US"),
    num(s.eventsPerSec),
    `${s.gateway.instances} × ${model.prices.assumptions.vcpuPerInstance} vCPU, ${s.gateway.memoryGb} GB`,
    `${s.redis.vcpu} vCPU, ${s.redis.memoryGb} GB`,
    `${s.postgres.vcpu} vCPU, ${s.postgres.memoryGb} GB`,
    `${model.prices.currency} ${s.monthlyCost.toFixed(0)}`,
    `${model.prices.currency} ${s.costPer1000Users.toFixed(2)}`,
  ]);
  void roleCpu;
  return `${head}\n${table(["users", "events/s", "gateway", "redis", "postgres", "per month", "per 1,000 users"], rows)}`;
}
