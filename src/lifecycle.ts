/**
 * Cleanup registered where a resource is opened, run last-in-first-out; the first error is kept
 * and the rest still run.
 */
export type Releaser = () => unknown | Promise<unknown>;

export class ResourceStack {
  private readonly releasers: Array<{ name: string; release: Releaser }> = [];

  /** register `release` to run at `close()`; returns the value for chaining at the open site */
  defer(name: string, release: Releaser): void {
    this.releasers.push({ name, release });
  }

  async close(onError?: (name: string, error: unknown) => void): Promise<void> {
    let first: unknown;
    while (this.releasers.length > 0) {
      const { name, release } = this.releasers.pop()!;
      try {
        await release();
      } catch (error) {
        onError?.(name, error);
        first ??= error;
      }
    }
    if (first !== undefined) throw first;
  }
}

/** Resolve with `promise`, or reject after `ms` with a message naming what timed out. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms}ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Exponential backoff with full jitter, so a fleet does not reconnect in lockstep. */
export function backoffMs(attempt: number, baseMs = 200, maxMs = 10_000): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 16));
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
