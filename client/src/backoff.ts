/** Reconnect delays: exponential, capped, with "equal jitter" so a drained fleet spreads out. */

export interface BackoffOptions {
  /** first delay. @default 500 */
  minDelayMs?: number;
  /** cap. @default 10000 */
  maxDelayMs?: number;
  /** for tests. @default Math.random */
  random?: () => number;
}

export class Backoff {
  private attempt = 0;
  private readonly min: number;
  private readonly max: number;
  private readonly random: () => number;

  constructor(options: BackoffOptions = {}) {
    this.min = options.minDelayMs ?? 500;
    this.max = Math.max(this.min, options.maxDelayMs ?? 10_000);
    this.random = options.random ?? Math.random;
  }

  get attempts(): number {
    return this.attempt;
  }

  /** the next delay; a server's `retryAfterMs` is a floor, never shortened by jitter */
  next(retryAfterMs = 0): number {
    const ceiling = Math.min(this.max, this.min * 2 ** Math.min(this.attempt, 20));
    this.attempt += 1;
    const jittered = ceiling / 2 + this.random() * (ceiling / 2);
    return Math.round(Math.max(jittered, retryAfterMs));
  }

  reset(): void {
    this.attempt = 0;
  }
}
