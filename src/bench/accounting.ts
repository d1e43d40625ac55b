/**
 * Delivery accounting, pure: what one subscriber received of one ticket's seqs against what was
 * committed, and commit-to-client latency from the writer's commit time and the client's receive
 * time of the same nonce. Workers and the report both use it; the unit test injects a loss, a
 * duplicate and a reordering and checks that exactly those are reported.
 */

/** One subscriber's view of one ticket: seqs after `baseSeq` (the seq the subscribe ack reported). */
export class SeqStream {
  readonly baseSeq: number;
  received = 0;
  duplicates = 0;
  outOfOrder = 0;
  maxSeq: number;
  /** highest n such that every seq in (baseSeq, n] was seen: where a resume starts */
  contiguous: number;
  private seen = new Uint8Array(16);

  constructor(baseSeq = 0) {
    this.baseSeq = baseSeq;
    this.maxSeq = baseSeq;
    this.contiguous = baseSeq;
  }

  record(seq: number): void {
    this.received += 1;
    const offset = seq - this.baseSeq - 1;
    if (offset < 0) {
      // at or before the subscribe point: the server should not send it
      this.duplicates += 1;
      return;
    }
    if (offset >= this.seen.length * 8) {
      const grown = new Uint8Array(Math.max(this.seen.length * 2, (offset >> 3) + 16));
      grown.set(this.seen);
      this.seen = grown;
    }
    const byte = offset >> 3;
    const bit = 1 << (offset & 7);
    if (this.seen[byte]! & bit) {
      this.duplicates += 1;
      return;
    }
    this.seen[byte]! |= bit;
    if (seq < this.maxSeq) this.outOfOrder += 1;
    else this.maxSeq = seq;
    while (this.has(this.contiguous + 1)) this.contiguous += 1;
  }

  has(seq: number): boolean {
    const offset = seq - this.baseSeq - 1;
    if (offset < 0 || offset >= this.seen.length * 8) return false;
    return (this.seen[offset >> 3]! & (1 << (offset & 7))) !== 0;
  }

  /** distinct seqs seen in (baseSeq, committed] */
  distinctUpTo(committed: number): number {
    let count = 0;
    for (let seq = this.baseSeq + 1; seq <= committed; seq += 1) if (this.has(seq)) count += 1;
    return count;
  }
}

export interface DeliverySummary {
  /** subscriber streams counted */
  streams: number;
  /** events the subscribers should have received: committed seqs after each one's subscribe point */
  expected: number;
  received: number;
  lost: number;
  duplicates: number;
  outOfOrder: number;
  /** seqs above what the database holds for the ticket */
  phantom: number;
}

export const emptySummary = (): DeliverySummary => ({ streams: 0, expected: 0, received: 0, lost: 0, duplicates: 0, outOfOrder: 0, phantom: 0 });

/** `committed`: the ticket's highest seq in the database (its event count on a fresh ticket). */
export function summarizeStream(stream: SeqStream, committed: number): DeliverySummary {
  const expected = Math.max(0, committed - stream.baseSeq);
  const distinct = stream.distinctUpTo(committed);
  // distinct seqs seen beyond what was committed
  const phantom = stream.received - stream.duplicates - distinct;
  return {
    streams: 1,
    expected,
    received: stream.received,
    lost: expected - distinct,
    duplicates: stream.duplicates,
    outOfOrder: stream.outOfOrder,
    phantom,
  };
}

export function addSummary(into: DeliverySummary, add: DeliverySummary): DeliverySummary {
  for (const key of Object.keys(into) as (keyof DeliverySummary)[]) into[key] += add[key];
  return into;
}

export interface LatencyJoin {
  /** ms, clamped at 0, in receive order */
  latencies: Float64Array;
  /** receive times of those latencies (epoch ms) */
  receivedAt: Float64Array;
  /** receives that came before the writer saw its COMMIT return (clamped to 0) */
  negative: number;
  /** receives of a nonce no writer committed (should stay 0) */
  unmatched: number;
}

/**
 * `commitAt[nonce]` is the writer's Date.now() after COMMIT returned (NaN: not committed);
 * `samples` holds pairs (nonce, receive time).
 */
export function joinLatencies(commitAt: Float64Array, samples: Float64Array): LatencyJoin {
  const n = samples.length >> 1;
  const latencies = new Float64Array(n);
  const receivedAt = new Float64Array(n);
  let count = 0;
  let negative = 0;
  let unmatched = 0;
  for (let i = 0; i < n; i += 1) {
    const nonce = samples[2 * i]!;
    const at = samples[2 * i + 1]!;
    const committed = nonce >= 0 && nonce < commitAt.length ? commitAt[nonce]! : NaN;
    if (Number.isNaN(committed)) {
      unmatched += 1;
      continue;
    }
    let latency = at - committed;
    if (latency < 0) {
      negative += 1;
      latency = 0;
    }
    latencies[count] = latency;
    receivedAt[count] = at;
    count += 1;
  }
  return { latencies: latencies.subarray(0, count), receivedAt: receivedAt.subarray(0, count), negative, unmatched };
}

export interface LatencyStats {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

export function latencyStats(values: Float64Array): LatencyStats {
  if (values.length === 0) return { count: 0, p50: NaN, p90: NaN, p99: NaN, max: NaN, mean: NaN };
  const sorted = Float64Array.from(values).sort();
  // nearest-rank percentile: the smallest value with at least p of the samples at or below it
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
  let sum = 0;
  for (const v of sorted) sum += v;
  return { count: sorted.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted[sorted.length - 1]!, mean: sum / sorted.length };
}

export interface TimelinePoint {
  /** seconds since the start of the phase */
  t: number;
  count: number;
  p50: number;
  p99: number;
  max: number;
}

/** latency per `bucketMs` of receive time, for the chart */
export function latencyTimeline(join: Pick<LatencyJoin, "latencies" | "receivedAt">, startAt: number, bucketMs = 1000): TimelinePoint[] {
  const buckets = new Map<number, number[]>();
  for (let i = 0; i < join.latencies.length; i += 1) {
    const bucket = Math.max(0, Math.floor((join.receivedAt[i]! - startAt) / bucketMs));
    let list = buckets.get(bucket);
    if (!list) buckets.set(bucket, (list = []));
    list.push(join.latencies[i]!);
  }
  return [...buckets.keys()]
    .sort((a, b) => a - b)
    .map((bucket) => {
      const stats = latencyStats(Float64Array.from(buckets.get(bucket)!));
      return { t: (bucket * bucketMs) / 1000, count: stats.count, p50: stats.p50, p99: stats.p99, max: stats.max };
    });
}

/** counts per latency bin (log-spaced edges in ms), for the distribution chart */
export function latencyHistogram(values: Float64Array, edges = [0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]): { le: number; count: number }[] {
  const counts = new Array<number>(edges.length + 1).fill(0);
  for (const v of values) {
    let i = 0;
    while (i < edges.length && v > edges[i]!) i += 1;
    counts[i]! += 1;
  }
  return counts.map((count, i) => ({ le: i < edges.length ? edges[i]! : Infinity, count }));
}
