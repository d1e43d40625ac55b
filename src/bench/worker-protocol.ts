/** Messages between the bench's main thread and its generator workers. */
import type { DeliverySummary } from "./accounting.js";
import type { ClientSpec } from "./light-client.js";

export interface WorkerInit {
  urls: string[];
  connectTimeoutMs: number;
}

export type ToWorker =
  | { type: "connect"; clients: ClientSpec[]; concurrency: number }
  | { type: "flush" }
  | { type: "counters" }
  | { type: "summary"; committed: Record<string, number> }
  | { type: "close" };

export interface Counters {
  connected: number;
  deliveries: number;
  unexpectedCloses: number;
  resumed: number;
  /** CPU ms of the worker's JS thread since it started */
  cpuMs: number;
}

export type ToParent =
  | { type: "ready" }
  | ({ type: "progress" } & Counters)
  | ({ type: "connected"; connected: number; failed: number; errors: Record<string, number>; startedAt: number; lastConnectedAt: number } & Counters)
  | ({ type: "samples"; samples: Float64Array } & Counters)
  | ({ type: "summary"; total: DeliverySummary; perTicket: Record<string, DeliverySummary>; pendingResume: number; lastResumedAt: number } & Counters)
  | { type: "closed" };
