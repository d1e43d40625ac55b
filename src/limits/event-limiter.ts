/**
 * EVENT_RATE_PER_SOCKET. A socket lives on exactly one instance, so an in-memory
 * rate-limiter-flexible limiter is exact in every mode; a Redis round trip per event would only
 * add latency and load.
 */
import { RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible";
import type { RateLimit } from "../config.js";
import type { EventLimiter } from "./types.js";

export function createEventLimiter(limit: RateLimit): EventLimiter {
  if (limit.points <= 0) return { consume: async () => ({ allowed: true, retryAfterMs: 0 }), forget() {} };
  const limiter = new RateLimiterMemory({ points: limit.points, duration: limit.durationMs / 1000 });
  return {
    async consume(key) {
      try {
        await limiter.consume(key);
        return { allowed: true, retryAfterMs: 0 };
      } catch (error) {
        if (error instanceof RateLimiterRes) return { allowed: false, retryAfterMs: Math.max(1, Math.ceil(error.msBeforeNext)) };
        throw error;
      }
    },
    forget(key) {
      void limiter.delete(key);
    },
  };
}
