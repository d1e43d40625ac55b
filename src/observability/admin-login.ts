/**
 * The admin UI's login throttle. Each password check is a bcrypt compare (tens of milliseconds of
 * CPU), so unthrottled it is a cheap way to burn the instance's CPU. This middleware runs before
 * @socket.io/admin-ui's own: it lets a known admin session through, takes one point per IP from a
 * rate-limiter-flexible limiter (cluster-wide on Redis) before any compare, refuses beyond
 * ADMIN_LOGIN_ATTEMPTS per window without comparing, and logs failures with the IP and user name,
 * never the password. A successful login gives its point back.
 */
import bcrypt from "bcryptjs";
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from "rate-limiter-flexible";
import type { GatewayConfig } from "../config.js";
import { coerceError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { Metrics } from "../metrics.js";
import type { RedisClients } from "../redis.js";
import { clientIp, limitKey } from "../socket/client-ip.js";
import type { Socket } from "socket.io";

/** login attempts per IP (IPv6: per prefix) per window, cluster-wide */
export const ADMIN_LOGIN_ATTEMPTS = 10;
export const ADMIN_LOGIN_WINDOW_S = 60;

export interface SessionStore {
  doesSessionExist(sessionId: string): Promise<boolean>;
}

export interface AdminLoginOptions {
  config: GatewayConfig;
  username: string;
  /** the bcrypt hash of ADMIN_UI_PASSWORD */
  hash: string;
  store: SessionStore;
  redis?: RedisClients;
  metrics: Metrics;
  logger: Logger;
}

function loginLimiter(config: GatewayConfig, redis?: RedisClients): RateLimiterAbstract {
  const memory = new RateLimiterMemory({ points: ADMIN_LOGIN_ATTEMPTS, duration: ADMIN_LOGIN_WINDOW_S });
  if (!redis) return memory;
  return new RateLimiterRedis({
    storeClient: redis.pub,
    keyPrefix: `${config.redisPrefix}:limits:admin-login`,
    points: ADMIN_LOGIN_ATTEMPTS,
    duration: ADMIN_LOGIN_WINDOW_S,
    rejectIfRedisNotReady: true,
    insuranceLimiter: memory,
  });
}

type Middleware = (socket: Socket, next: (err?: Error) => void) => Promise<void>;

export function adminLoginGuard(options: AdminLoginOptions): Middleware {
  const { config, username, hash, store, metrics } = options;
  const logger = options.logger.child({ scope: "admin-ui" });
  const limiter = loginLimiter(config, options.redis);
  const refuse = (next: (err?: Error) => void, message: string, data?: object) => next(Object.assign(new Error(message), data ? { data } : {}));
  return async (socket, next) => {
    const auth = (socket.handshake.auth ?? {}) as { username?: unknown; password?: unknown; sessionId?: unknown };
    if (typeof auth.sessionId === "string" && (await store.doesSessionExist(auth.sessionId))) return next();
    const ip = clientIp(socket.handshake.address, socket.handshake.headers, config.trustProxy);
    const key = limitKey(ip, config.ipv6PrefixLength);
    try {
      await limiter.consume(key);
    } catch (error) {
      if (!(error instanceof RateLimiterRes)) {
        // no limiter at all (Redis and its insurance failed): refuse rather than compare unthrottled
        logger.warn({ ip, err: coerceError(error).message }, "admin login throttle unavailable; refusing");
        return refuse(next, "login temporarily unavailable");
      }
      const retryAfterMs = Math.max(1, Math.ceil(error.msBeforeNext));
      metrics.adminLogins.inc({ result: "throttled" });
      logger.warn({ ip, retryAfterMs }, "admin login throttled");
      return refuse(next, `too many login attempts, retry in ${retryAfterMs}ms`, { code: "RATE_LIMITED", status: 429, retryAfterMs });
    }
    const ok = auth.username === username && typeof auth.password === "string" && (await bcrypt.compare(auth.password, hash));
    if (!ok) {
      metrics.adminLogins.inc({ result: "invalid" });
      const user = typeof auth.username === "string" ? auth.username.slice(0, 64) : undefined;
      logger.warn({ ip, username: user }, "admin login failed");
      return refuse(next, "invalid credentials");
    }
    metrics.adminLogins.inc({ result: "ok" });
    await limiter.reward(key).catch(() => undefined);
    logger.info({ ip }, "admin login");
    next();
  };
}
