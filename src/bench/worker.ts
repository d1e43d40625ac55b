/**
 * A generator worker thread: holds its share of the light clients, connects and subscribes them on
 * request, and streams back (nonce, receive time) pairs plus counters. The accounting of what
 * each subscriber received stays here until the parent sends the committed counts.
 */
import { readFileSync } from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import { addSummary, emptySummary, summarizeStream, type DeliverySummary } from "./accounting.js";
import { ConnectError, LightClient, type ClientSpec } from "./light-client.js";
import type { ToParent, ToWorker, WorkerInit } from "./worker-protocol.js";

const init = workerData as WorkerInit;
const port = parentPort!;
const send = (message: ToParent, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);

let clients: LightClient[] = [];
let samples = new Float64Array(1 << 14);
let sampleCount = 0;
let deliveries = 0;
let unexpectedCloses = 0;
let resumed = 0;
const connectErrors: Record<string, number> = {};

/** CPU of this worker's own OS thread (the JS thread): the generator's share of the cores */
function threadCpuMs(): number {
  try {
    const stat = readFileSync("/proc/thread-self/stat", "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return NaN;
  }
}

const hooks = {
  urls: init.urls,
  connectTimeoutMs: init.connectTimeoutMs,
  onUpdate(_client: LightClient, _ticketId: string, _seq: number | null, nonce: number, at: number) {
    deliveries += 1;
    if (sampleCount * 2 + 2 > samples.length) {
      const grown = new Float64Array(samples.length * 2);
      grown.set(samples);
      samples = grown;
    }
    samples[sampleCount * 2] = nonce;
    samples[sampleCount * 2 + 1] = at;
    sampleCount += 1;
  },
  onUnexpectedClose() {
    unexpectedCloses += 1;
  },
  onResumed() {
    resumed += 1;
  },
};

function counters() {
  return {
    connected: clients.filter((c) => c.connected).length,
    deliveries,
    unexpectedCloses,
    resumed,
    cpuMs: threadCpuMs(),
  };
}

/** run `task` over `items` with at most `limit` in flight */
async function pool<T>(items: T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await task(items[next++]!);
  });
  await Promise.all(lanes);
}

async function connectAll(specs: ClientSpec[], concurrency: number): Promise<void> {
  const started = Date.now();
  let lastConnectedAt = started;
  const fresh = specs.map((spec) => new LightClient(spec, hooks));
  clients.push(...fresh);
  let connected = 0;
  let failed = 0;
  await pool(fresh, concurrency, async (client) => {
    try {
      await client.connect();
      await client.subscribeAll();
      connected += 1;
      lastConnectedAt = Date.now();
    } catch (error) {
      failed += 1;
      const code = error instanceof ConnectError ? error.code : "SUBSCRIBE";
      connectErrors[code] = (connectErrors[code] ?? 0) + 1;
      client.close();
    }
  });
  send({ type: "connected", ...counters(), connected, failed, errors: { ...connectErrors }, startedAt: started, lastConnectedAt });
}

function summary(committed: Record<string, number>): void {
  const perTicket: Record<string, DeliverySummary> = {};
  const total = emptySummary();
  let pendingResume = 0;
  let lastResumedAt = 0;
  for (const client of clients) {
    if (client.closing) continue;
    if (client.disconnectedAt > 0) {
      if (client.resumedAt === 0) pendingResume += 1;
      else lastResumedAt = Math.max(lastResumedAt, client.resumedAt);
    }
    for (const [ticketId, stream] of client.streams) {
      const s = summarizeStream(stream, committed[ticketId] ?? 0);
      addSummary((perTicket[ticketId] ??= emptySummary()), s);
      addSummary(total, s);
    }
  }
  send({ type: "summary", total, perTicket, pendingResume, lastResumedAt, ...counters() });
}

port.on("message", (message: ToWorker) => {
  switch (message.type) {
    case "connect":
      void connectAll(message.clients, message.concurrency);
      return;
    case "flush": {
      const out = samples.slice(0, sampleCount * 2);
      sampleCount = 0;
      send({ type: "samples", samples: out, ...counters() }, [out.buffer]);
      return;
    }
    case "counters":
      send({ type: "progress", ...counters() });
      return;
    case "summary":
      summary(message.committed);
      return;
    case "close":
      for (const client of clients) client.close();
      clients = [];
      send({ type: "closed" });
      return;
  }
});

// counters flow all the time, so the progress bar moves during the load too
setInterval(() => send({ type: "progress", ...counters() }), 500).unref();

send({ type: "ready" });
