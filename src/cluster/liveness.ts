/**
 * Cluster liveness: which gateway instances are alive, one mechanism for everything that must
 * forget a dead instance (its per-IP connection slots, its presence viewers).
 *
 * Each instance beats a heartbeat into one sorted set, `<prefix>:{gw}:instances`, member = instance
 * id, score = the moment (Redis clock, ms) its heartbeat expires. A script that must ignore dead
 * instances reads that set as a declared key: every key of the gateway's coordination state shares
 * the `{gw}` hash tag, so on a Redis Cluster all of it lives in one slot and the scripts stay atomic.
 * A periodic sweep, which any live instance runs, hands each expired instance to the registered
 * `onDead` handlers and forgets it only when all of them succeeded (unless it came back meanwhile).
 *
 * A SIGKILLed instance therefore drops out of every count and list `ttlMs` after its last beat,
 * and its leftovers are deleted within ~1.25 × `sweepMs` after that.
 */
import { coerceError } from "../errors.js";
import { withTimeout } from "../lifecycle.js";
import type { Logger } from "../logger.js";
import type { RedisConnection } from "../redis.js";

/** The hash tag every coordination key shares (liveness, connection slots, presence). */
export const COORDINATION_TAG = "{gw}";

const NOW = /* lua */ `
local function nowms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`;

/** KEYS: instances. ARGV: instanceId, ttlMs. 1 when the instance was alive before this beat. */
const BEAT = NOW + /* lua */ `
local now = nowms()
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
local was = (s ~= false and s ~= nil and tonumber(s) > now) and 1 or 0
-- GT: never shorten a beat another path (a presence join) pushed further
redis.call('ZADD', KEYS[1], 'GT', now + tonumber(ARGV[2]), ARGV[1])
return was
`;

/** KEYS: instances. ARGV: limit. The instances whose heartbeat expired. */
const DEAD = NOW + /* lua */ `
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', nowms(), 'LIMIT', 0, tonumber(ARGV[1]))
`;

/** KEYS: instances. ARGV: instanceId. Forget a swept instance unless it came back meanwhile. */
const FORGET = NOW + /* lua */ `
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if s ~= false and s ~= nil and tonumber(s) > nowms() then return 0 end
return redis.call('ZREM', KEYS[1], ARGV[1])
`;

export interface LivenessOptions {
  client: RedisConnection;
  /** REDIS_PREFIX */
  prefix: string;
  instanceId: string;
  logger: Logger;
  /** @default 5000 */
  heartbeatMs?: number;
  /** how long an instance counts as alive after a heartbeat. @default 15000 */
  ttlMs?: number;
  /** mean interval between sweeps (jittered ±25%). @default 5000 */
  sweepMs?: number;
}

export interface Liveness {
  readonly instanceId: string;
  /** the sorted set instance → heartbeat expiry; scripts read it as a declared key */
  readonly key: string;
  /** `<prefix>:{gw}`: the base of every key that a script reads together with `key` */
  readonly base: string;
  readonly ttlMs: number;
  /**
   * After each heartbeat, in order: `lost` is true when this instance had been declared dead
   * since its previous beat (a long pause, a partition), so a sweep may have deleted its state.
   */
  onBeat(listener: (info: { ok: boolean; lost: boolean }) => unknown): void;
  /** clean up after a dead instance; must be idempotent (two sweepers may run it) */
  onDead(handler: (instanceId: string) => Promise<unknown>): void;
  /** one heartbeat now (normally on a timer) */
  beat(): Promise<void>;
  /** one sweep now (normally on a timer) */
  sweep(): Promise<void>;
  /** stop the timers and leave the set (after the consumers removed their state) */
  close(): Promise<void>;
}

type Scripted = RedisConnection & {
  rgLiveBeat(key: string, id: string, ttlMs: number): Promise<number>;
  rgLiveDead(key: string, limit: number): Promise<string[]>;
  rgLiveForget(key: string, id: string): Promise<number>;
};

export function createLiveness(options: LivenessOptions): Liveness {
  const heartbeatMs = options.heartbeatMs ?? 5000;
  const ttlMs = options.ttlMs ?? 15_000;
  const sweepMs = options.sweepMs ?? 5000;
  const { instanceId } = options;
  const log = options.logger.child({ component: "liveness" });
  const redis = options.client as Scripted;
  if (typeof (redis as Partial<Scripted>).rgLiveBeat !== "function") {
    redis.defineCommand("rgLiveBeat", { numberOfKeys: 1, lua: BEAT });
    redis.defineCommand("rgLiveDead", { numberOfKeys: 1, lua: DEAD });
    redis.defineCommand("rgLiveForget", { numberOfKeys: 1, lua: FORGET });
  }
  const base = `${options.prefix}:${COORDINATION_TAG}`;
  const key = `${base}:instances`;
  const beatListeners: Array<(info: { ok: boolean; lost: boolean }) => unknown> = [];
  const deadHandlers: Array<(id: string) => Promise<unknown>> = [];
  let beaten = false;
  let closed = false;
  let heartbeatTimer: NodeJS.Timeout | undefined;
  let sweepTimer: NodeJS.Timeout | undefined;
  // beats and sweeps run one at a time, in order
  let chain: Promise<void> = Promise.resolve();
  const serial = (work: () => Promise<void>) => (chain = chain.then(work, work));

  async function heartbeat(): Promise<void> {
    let info = { ok: false, lost: false };
    try {
      const wasAlive = Number(await redis.rgLiveBeat(key, instanceId, ttlMs));
      info = { ok: true, lost: wasAlive === 0 && beaten };
      beaten = true;
    } catch (error) {
      log.debug({ err: coerceError(error).message }, "heartbeat failed");
    }
    for (const listener of beatListeners) {
      try {
        await listener(info);
      } catch (error) {
        log.warn({ err: coerceError(error) }, "heartbeat listener failed");
      }
    }
  }

  async function sweep(): Promise<void> {
    try {
      const dead = (await redis.rgLiveDead(key, 100)).filter((id) => id !== instanceId);
      for (const id of dead) {
        const results = await Promise.allSettled(deadHandlers.map((handler) => handler(id)));
        const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
        // keep it in the set: the next sweep (here or elsewhere) retries what failed
        if (failed) throw failed.reason;
        await redis.rgLiveForget(key, id);
        log.info({ deadInstance: id }, "swept a dead instance");
      }
    } catch (error) {
      log.debug({ err: coerceError(error).message }, "sweep failed");
    }
  }

  function scheduleBeat(): void {
    if (closed) return;
    heartbeatTimer = setTimeout(() => void serial(heartbeat).finally(scheduleBeat), heartbeatMs);
  }
  function scheduleSweep(): void {
    if (closed) return;
    sweepTimer = setTimeout(() => void serial(sweep).finally(scheduleSweep), sweepMs * (0.75 + Math.random() * 0.5));
  }
  // the first beat on the next tick, once the consumers registered their listeners
  queueMicrotask(() => {
    if (closed) return;
    void serial(heartbeat);
    scheduleBeat();
    scheduleSweep();
  });

  return {
    instanceId,
    key,
    base,
    ttlMs,
    onBeat: (listener) => void beatListeners.push(listener),
    onDead: (handler) => void deadHandlers.push(handler),
    beat: () => serial(heartbeat),
    sweep: () => serial(sweep),
    async close() {
      if (closed) return;
      closed = true;
      clearTimeout(heartbeatTimer);
      clearTimeout(sweepTimer);
      await withTimeout(chain, 3000, "last heartbeat").catch(() => undefined);
      // a dead Redis must not hold up shutdown: the expiry tells the others instead
      await withTimeout(Promise.resolve(redis.zrem(key, instanceId)), 2000, "liveness cleanup").catch((error: unknown) =>
        log.debug({ err: coerceError(error).message }, "could not leave the liveness set; it expires"),
      );
    },
  };
}
