/**
 * One target under load: connect and subscribe the clients, then run the rate steps, each followed
 * by a drain, and account every step (latency from the commit log, loss/duplicates/reordering from
 * the seqs against the source's counts). Used alike for the gateway and the bare baseline.
 */
import { joinLatencies, latencyHistogram, latencyStats, latencyTimeline, type DeliverySummary, type LatencyStats, type TimelinePoint } from "./accounting.js";
import { startGenerator } from "./generator.js";
import type { ClientSpec } from "./light-client.js";
import { Meter, type CpuUse } from "./meter.js";
import type { Progress } from "./progress.js";
import { CommitLog, driveLoad, type Publisher } from "./publishers.js";

export interface TargetUnderTest {
  kind: "gateway" | "bare";
  urls: string[];
  /** instance names in the meter, index-aligned with urls (empty for a remote deployment) */
  instances: string[];
  publisher: Publisher;
  token?: (index: number, tickets: string[]) => Promise<string>;
}

export interface LoadPlan {
  clients: number;
  /** ticket ids; client i subscribes to tickets[i % n] */
  tickets: string[];
  /** which tickets the writers spread events over (hot: the one ticket) */
  publishTo: string[];
  steps: { rate: number; durationMs: number }[];
  workers: number;
  connectConcurrency: number;
  /** ramp: stop at the first step whose p99 >= this or that loses anything */
  stopWhen?: { p99Ms: number };
  /** storm: kill this instance this far into the first step */
  kill?: { afterMs: number; instance: number; run: () => Promise<void> };
}

export interface StepResult {
  rate: number;
  /** committed events per second the source actually reached (below `rate`: the writers were the limit) */
  achievedRate: number;
  issued: number;
  committed: number;
  writeErrors: number;
  writerBacklog: number;
  deliveries: number;
  deliveriesPerSec: number;
  latency: LatencyStats;
  negativeLatencies: number;
  unmatched: number;
  delivery: DeliverySummary;
  /** tickets where a subscriber lost, got twice or out of order (cumulative, first 50) */
  ticketsWithProblems: ({ ticketId: string } & DeliverySummary)[];
  cpu: CpuUse[];
  timeline: TimelinePoint[];
  histogram: { le: number; count: number }[];
  passed?: boolean;
}

export interface TargetResult {
  kind: string;
  clients: number;
  connect: { connected: number; failed: number; errors: Record<string, number>; durationMs: number; rate: number; cpu: CpuUse[] };
  rssPerConnection: Record<string, { before: number; after: number; connections: number; bytesPerConnection: number }>;
  steps: StepResult[];
  unexpectedDisconnects: number;
  storm?: { killedAt: number; disconnected: number; resumeMs: number | null; pendingResume: number };
  /** the highest step rate that passed (ramp) */
  bestRate?: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function runLoad(target: TargetUnderTest, plan: LoadPlan, meter: Meter, progress: Progress): Promise<TargetResult> {
  const label = target.kind;
  const specs: ClientSpec[] = [];
  if (target.token) progress.phase(`${label}: minting ${plan.clients} tokens`);
  for (let i = 0; i < plan.clients; i += 1) {
    const tickets = [plan.tickets[i % plan.tickets.length]!];
    specs.push({ tickets, urlIndex: i % target.urls.length, token: target.token ? await target.token(i, tickets) : undefined });
  }
  const generator = await startGenerator({ workers: plan.workers, urls: target.urls });
  meter.setWorkerCpu(() => generator.workerCpuMs());
  try {
    const rssBefore = Object.fromEntries(target.instances.map((name) => [name, meter.rss(name)]));
    await generator.refresh();
    const cpu0 = meter.snapshot();
    const ticker = setInterval(() => {
      const c = generator.counters();
      progress.update({ done: c.connected, total: plan.clients, text: `${label}: connecting ${c.connected}/${plan.clients}` });
    }, 250);
    const connect = await generator.connect(specs, plan.connectConcurrency).finally(() => clearInterval(ticker));
    await generator.refresh();
    const cpu1 = meter.snapshot();
    const rssPerConnection: TargetResult["rssPerConnection"] = {};
    target.instances.forEach((name, index) => {
      const after = meter.rss(name);
      const connections = specs.filter((s) => s.urlIndex === index).length;
      rssPerConnection[name] = { before: rssBefore[name]!, after, connections, bytesPerConnection: (after - rssBefore[name]!) / Math.max(1, connections) };
    });
    progress.log(`${label}: ${connect.connected}/${plan.clients} connected and subscribed in ${(connect.durationMs / 1000).toFixed(1)} s (${connect.rate.toFixed(0)} conn/s), ${connect.failed} failed`);
    const subscribers = new Map<string, number>();
    for (const s of specs) for (const t of s.tickets) subscribers.set(t, (subscribers.get(t) ?? 0) + 1);

    const log = new CommitLog();
    const steps: StepResult[] = [];
    let before = emptyDelivery();
    let storm: TargetResult["storm"];
    let bestRate: number | undefined;
    for (const [index, step] of plan.steps.entries()) {
      const stepStart = Date.now();
      const cpuA = meter.snapshot();
      const startCounters = await generator.refresh();
      const firstNonce = log.next;
      let expected = 0;
      const ticker = setInterval(() => {
        const c = generator.counters();
        const elapsed = Date.now() - stepStart;
        progress.update({
          done: Math.min(elapsed, step.durationMs),
          total: step.durationMs,
          text: `${label} ${step.rate} ev/s: ${(elapsed / 1000).toFixed(0)}/${(step.durationMs / 1000).toFixed(0)} s, ${c.connected} connected, ${c.deliveries - startCounters.deliveries} delivered`,
        });
      }, 250);
      let killedAt = 0;
      const kill = index === 0 ? plan.kill : undefined;
      const load = await driveLoad({
        publisher: target.publisher,
        log,
        tickets: plan.publishTo,
        rate: step.rate,
        durationMs: step.durationMs,
        at: kill && { ms: kill.afterMs, run: () => ((killedAt = Date.now()), void kill.run()) },
      }).finally(() => clearInterval(ticker));
      for (let n = firstNonce; n < log.next; n += 1) if (!Number.isNaN(log.times[n]!)) expected += subscribers.get(plan.publishTo[n % plan.publishTo.length]!) ?? 0;
      // drain: until every expected delivery arrived, or nothing moved for 3 s (then what is missing is lost)
      progress.phase(`${label} ${step.rate} ev/s: draining`);
      let last = -1;
      let quietSince = Date.now();
      const drainDeadline = Date.now() + (kill ? 60_000 : 20_000);
      for (;;) {
        const c = await generator.refresh();
        const got = c.deliveries - startCounters.deliveries;
        if (got >= expected || Date.now() > drainDeadline) break;
        if (got !== last) {
          last = got;
          quietSince = Date.now();
        } else if (Date.now() - quietSince > 3000) break;
        await sleep(100);
      }
      if (kill) {
        progress.phase(`${label}: waiting for every client to resume`);
        const deadline = Date.now() + 60_000;
        let s = await generator.summary(await target.publisher.committed(plan.tickets));
        while (s.pendingResume > 0 && Date.now() < deadline) {
          await sleep(250);
          s = await generator.summary(await target.publisher.committed(plan.tickets));
        }
        const c = generator.counters();
        storm = {
          killedAt,
          disconnected: c.unexpectedCloses,
          resumeMs: s.pendingResume === 0 && s.lastResumedAt > 0 ? s.lastResumedAt - killedAt : null,
          pendingResume: s.pendingResume,
        };
      }
      const cpuB = meter.snapshot();
      const endCounters = generator.counters();
      const samples = await generator.flush();
      const join = joinLatencies(log.times, samples);
      const summary = await generator.summary(await target.publisher.committed(plan.tickets));
      const delivery = diffDelivery(summary.total, before);
      before = { ...summary.total };
      const deliveries = endCounters.deliveries - startCounters.deliveries;
      const wallMs = Math.max(1, cpuB.at - cpuA.at);
      const result: StepResult = {
        rate: step.rate,
        achievedRate: (load.committed * 1000) / Math.max(1, load.durationMs),
        issued: load.issued,
        committed: load.committed,
        writeErrors: load.errors,
        writerBacklog: load.maxBacklog,
        deliveries,
        deliveriesPerSec: (deliveries * 1000) / Math.min(wallMs, load.durationMs),
        latency: latencyStats(join.latencies),
        negativeLatencies: join.negative,
        unmatched: join.unmatched,
        delivery,
        ticketsWithProblems: Object.entries(summary.perTicket)
          .filter(([, t]) => t.lost + t.duplicates + t.outOfOrder + t.phantom > 0)
          .slice(0, 50)
          .map(([ticketId, t]) => ({ ticketId, ...t })),
        cpu: meter.delta(cpuA, cpuB),
        timeline: latencyTimeline(join, stepStart),
        histogram: latencyHistogram(join.latencies),
      };
      steps.push(result);
      progress.log(
        `${label} ${step.rate} ev/s: ${deliveries} deliveries, p50 ${fmt(result.latency.p50)} p99 ${fmt(result.latency.p99)} ms, lost ${delivery.lost}, dup ${delivery.duplicates}, out-of-order ${delivery.outOfOrder}`,
      );
      if (plan.stopWhen) {
        result.passed =
          result.latency.p99 < plan.stopWhen.p99Ms &&
          delivery.lost === 0 &&
          load.errors === 0 &&
          load.committed === load.issued &&
          result.achievedRate >= 0.95 * step.rate;
        if (!result.passed) break;
        bestRate = step.rate;
      }
    }
    return {
      kind: target.kind,
      clients: plan.clients,
      connect: { ...connect, cpu: meter.delta(cpu0, cpu1) },
      rssPerConnection,
      steps,
      unexpectedDisconnects: generator.counters().unexpectedCloses,
      storm,
      bestRate,
    };
  } finally {
    progress.phase(`${label}: closing clients`);
    await generator.close();
    meter.setWorkerCpu(() => []);
  }
}

const fmt = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : "-");

function emptyDelivery(): DeliverySummary {
  return { streams: 0, expected: 0, received: 0, lost: 0, duplicates: 0, outOfOrder: 0, phantom: 0 };
}

function diffDelivery(now: DeliverySummary, before: DeliverySummary): DeliverySummary {
  return {
    streams: now.streams,
    expected: now.expected - before.expected,
    received: now.received - before.received,
    lost: now.lost - before.lost,
    duplicates: now.duplicates - before.duplicates,
    outOfOrder: now.outOfOrder - before.outOfOrder,
    phantom: now.phantom - before.phantom,
  };
}
