/**
 * Admission of a new connection: first the per-IP connection rate, then the per-IP concurrent
 * cap. The rate is rate-limiter-flexible (memory, or Redis with a memory insurance limiter); the
 * cap is a slot store (memory, or the crash-safe Redis slots).
 */
import { RateLimiterRes, type RateLimiterAbstract } from "rate-limiter-flexible";
import { HandshakeCode, HandshakeError, coerceError } from "../errors.js";
import type { Logger } from "../logger.js";
import { LocalSlots } from "./local-slots.js";
import type { ConnectionLimiter, Lease } from "./types.js";

/** Where concurrent connections per IP are counted. */
export interface SlotStore {
  acquire(ip: string, max: number): Promise<{ allowed: boolean; held: number }>;
  release(ip: string): void;
  close(): Promise<void>;
}

export function memorySlots(): SlotStore & { local: LocalSlots } {
  const local = new LocalSlots();
  return {
    local,
    acquire: async (ip, max) => ({ allowed: local.tryAcquire(ip, max), held: local.count(ip) }),
    release: (ip) => local.release(ip),
    close: async () => {},
  };
}

/** One held slot: a small object per connection, no closure. */
class SlotLease implements Lease {
  private released = false;
  constructor(
    private readonly slots: SlotStore,
    private readonly ip: string,
  ) {}
  release(): void {
    if (this.released) return;
    this.released = true;
    this.slots.release(this.ip);
  }
}

export interface ConnectionLimiterOptions {
  /** MAX_CONNECTIONS_PER_IP; 0 disables the cap (connections are still counted) */
  maxPerIp: number;
  /** CONNECTION_RATE_PER_IP as a limiter; undefined when disabled */
  rate?: RateLimiterAbstract;
  slots: SlotStore;
  logger: Logger;
}

export function createConnectionLimiter(options: ConnectionLimiterOptions): ConnectionLimiter {
  const { maxPerIp, rate, slots, logger } = options;
  return {
    async admit(ip: string): Promise<Lease> {
      if (rate) {
        try {
          await rate.consume(ip);
        } catch (error) {
          if (!(error instanceof RateLimiterRes)) {
            // both the store and its insurance failed: rather serve than lock everyone out
            logger.warn({ err: coerceError(error) }, "connection rate limiter failed; admitting");
          } else {
            // a rejected consume still counted: give the point back so retries do not extend the penalty
            await rate.reward(ip).catch(() => undefined);
            const retryAfterMs = Math.max(1, Math.ceil(error.msBeforeNext));
            throw new HandshakeError(HandshakeCode.RATE_LIMITED, `too many new connections from your address, retry in ${retryAfterMs}ms`, retryAfterMs);
          }
        }
      }
      const { allowed } = await slots.acquire(ip, maxPerIp);
      if (!allowed) {
        throw new HandshakeError(HandshakeCode.TOO_MANY_CONNECTIONS, `your address already holds ${maxPerIp} connections`);
      }
      return new SlotLease(slots, ip);
    },
    close: () => slots.close(),
  };
}
