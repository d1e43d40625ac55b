/** The limiter seams: memory drivers in single-node mode, Redis drivers in a cluster. */

/** A held connection slot; `release()` is idempotent so every close path may call it. */
export interface Lease {
  release(): void;
}

export interface ConnectionLimiter {
  /** reserve a slot for a new Engine.IO session of `ip` (a limit key: the IPv4 address or the IPv6 prefix), or reject with a `HandshakeError` */
  admit(ip: string): Promise<Lease>;
  close(): Promise<void>;
}

export interface EventLimiter {
  /** one client event from `key` (a socket id); false when over `EVENT_RATE_PER_SOCKET` */
  consume(key: string): Promise<{ allowed: boolean; retryAfterMs: number }>;
  /** forget `key` when its socket closes */
  forget(key: string): void;
}
