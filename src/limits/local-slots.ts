/**
 * Concurrent connections per IP held by this instance. The single-node limiter is just this; the
 * cluster limiter keeps it too, as the truth it rebuilds Redis from and as its fallback while
 * Redis is unreachable.
 */
export class LocalSlots {
  private readonly counts = new Map<string, number>();

  count(ip: string): number {
    return this.counts.get(ip) ?? 0;
  }

  /** take a slot unless `ip` already holds `max` here (`max` 0: unlimited) */
  tryAcquire(ip: string, max: number): boolean {
    const held = this.count(ip);
    if (max > 0 && held >= max) return false;
    this.counts.set(ip, held + 1);
    return true;
  }

  /** record a slot granted elsewhere (by Redis) */
  add(ip: string): void {
    this.counts.set(ip, this.count(ip) + 1);
  }

  release(ip: string): void {
    const held = this.count(ip) - 1;
    if (held > 0) this.counts.set(ip, held);
    else this.counts.delete(ip);
  }

  /** every IP with its count, for rebuilding this instance's Redis hash */
  entries(): Array<[string, number]> {
    return [...this.counts];
  }

  get total(): number {
    let sum = 0;
    for (const n of this.counts.values()) sum += n;
    return sum;
  }
}
