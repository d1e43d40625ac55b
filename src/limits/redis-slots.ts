/**
 * Cluster-wide concurrent connections per IP, crash-safe.
 *
 * Each instance owns one Redis hash (ip → connections it holds) that expires unless the instance
 * refreshes it; the cluster count of an IP is the sum over the hashes that still exist. A SIGKILLed
 * or OOM-killed instance stops refreshing, so its slots free themselves after `ttlMs`, with no
 * operator action and no need for anyone to notice the death. The instance's in-memory
 * `LocalSlots` is the truth: every heartbeat rewrites the hash from it, which also heals whatever
 * a Redis outage, a failed release or a Redis restart left behind. While Redis is unreachable the
 * limit is enforced per instance from `LocalSlots` (the fallback), and the first successful
 * rewrite after it returns puts the connections admitted meanwhile back into the cluster count.
 *
 * rate-limiter-flexible counts events in windows; it has no lease that dies with its holder, so
 * this part is two small Lua scripts instead.
 */
import type { Redis } from "ioredis";
import { coerceError } from "../errors.js";
import { withTimeout } from "../lifecycle.js";
import type { Logger } from "../logger.js";
import { LocalSlots } from "./local-slots.js";

/** Sum the IP over live instance hashes; take a slot in ours when under `max`. Drops dead instances. */
const ACQUIRE = `
local total = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = ARGV[5] .. id
  local n = redis.call('HGET', key, ARGV[1])
  if n then
    total = total + tonumber(n)
  elseif id ~= ARGV[3] and redis.call('EXISTS', key) == 0 then
    redis.call('SREM', KEYS[1], id)
  end
end
if tonumber(ARGV[2]) > 0 and total >= tonumber(ARGV[2]) then return {0, total} end
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('SADD', KEYS[1], ARGV[3])
return {1, total + 1}
`;

const RELEASE = `
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 1
`;

/** HSET arguments per command while rewriting a hash, well under Lua's and Redis' argument limits */
const CHUNK = 500;

export interface RedisSlotsOptions {
  client: Redis;
  prefix: string;
  instanceId: string;
  logger: Logger;
  /** how long a silent instance's slots survive. @default 30000 */
  ttlMs?: number;
  /** how often the hash is rewritten and its expiry pushed back. @default 10000 */
  heartbeatMs?: number;
  /** called with true while the per-instance fallback is in force */
  onFallback?: (active: boolean) => void;
}

interface SlotCommands {
  rgSlotAcquire(instances: string, own: string, ip: string, max: number, id: string, ttlMs: number, hashPrefix: string): Promise<[number, number]>;
  rgSlotRelease(own: string, ip: string): Promise<number>;
}

export class RedisSlots {
  readonly local = new LocalSlots();
  private readonly client: Redis & SlotCommands;
  private readonly instancesKey: string;
  private readonly hashPrefix: string;
  private readonly ownKey: string;
  private readonly ttlMs: number;
  private readonly timer: NodeJS.Timeout;
  /** the hash may differ from `local`: rewrite it before trusting the cluster sum again */
  private dirty = true;
  private fallback = false;
  private inflight = 0;
  private idle: Array<() => void> = [];
  private syncing: Promise<boolean> | undefined;
  private closed = false;

  constructor(private readonly options: RedisSlotsOptions) {
    this.client = options.client as Redis & SlotCommands;
    // {conn} is a hash tag: every key the scripts touch lives in one Redis Cluster slot
    this.instancesKey = `${options.prefix}:limits:{conn}:instances`;
    this.hashPrefix = `${options.prefix}:limits:{conn}:i:`;
    this.ownKey = this.hashPrefix + options.instanceId;
    this.ttlMs = options.ttlMs ?? 30_000;
    if (typeof (options.client as Partial<SlotCommands>).rgSlotAcquire !== "function") {
      options.client.defineCommand("rgSlotAcquire", { numberOfKeys: 2, lua: ACQUIRE });
      options.client.defineCommand("rgSlotRelease", { numberOfKeys: 1, lua: RELEASE });
    }
    this.timer = setInterval(() => void this.sync(), options.heartbeatMs ?? 10_000);
    this.timer.unref();
    void this.sync();
  }

  /** Redis went away or came back: rewrite our hash at the first chance */
  markDirty(): void {
    this.dirty = true;
    if (!this.ready()) this.setFallback(true, "redis connection lost");
  }

  async acquire(ip: string, max: number): Promise<{ allowed: boolean; held: number }> {
    while (this.syncing) await this.syncing;
    if (this.dirty && this.ready()) await this.sync();
    if (this.dirty || !this.ready()) return this.acquireLocally(ip, max, "redis unavailable");
    this.inflight += 1;
    try {
      const [allowed, held] = await this.client.rgSlotAcquire(this.instancesKey, this.ownKey, ip, max, this.options.instanceId, this.ttlMs, this.hashPrefix);
      if (allowed === 1) this.local.add(ip);
      return { allowed: allowed === 1, held };
    } catch (error) {
      // the script may or may not have run: only a rewrite knows the truth
      this.dirty = true;
      return this.acquireLocally(ip, max, coerceError(error).message);
    } finally {
      this.inflight -= 1;
      if (this.inflight === 0) for (const wake of this.idle.splice(0)) wake();
    }
  }

  release(ip: string): void {
    this.local.release(ip);
    if (this.closed) return;
    if (this.dirty || !this.ready()) {
      this.dirty = true;
      return;
    }
    this.client.rgSlotRelease(this.ownKey, ip).catch(() => {
      this.dirty = true;
    });
  }

  /**
   * Rewrite our hash from `local` and push its expiry back. Acquires wait while it runs, and it
   * waits for acquires already sent, so the snapshot cannot miss a slot Redis granted meanwhile.
   */
  sync(): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    this.syncing ??= this.rewrite().finally(() => {
      this.syncing = undefined;
    });
    return this.syncing;
  }

  private async rewrite(): Promise<boolean> {
    if (!this.ready()) {
      this.dirty = true;
      this.setFallback(true, "redis unavailable");
      return false;
    }
    try {
      if (this.inflight > 0) await withTimeout(new Promise<void>((resolve) => this.idle.push(resolve)), 10_000, "in-flight slot requests");
      const multi = this.client.multi().del(this.ownKey);
      const entries = this.local.entries();
      for (let i = 0; i < entries.length; i += CHUNK) multi.hset(this.ownKey, Object.fromEntries(entries.slice(i, i + CHUNK)));
      if (entries.length > 0) multi.pexpire(this.ownKey, this.ttlMs);
      multi.sadd(this.instancesKey, this.options.instanceId);
      // snapshot taken and sent in the same tick: a release after this point reaches Redis after it
      this.dirty = false;
      const results = await multi.exec();
      const failed = results?.find(([error]) => error);
      if (!results || failed) throw failed?.[0] ?? new Error("transaction aborted");
      this.setFallback(false);
      return true;
    } catch (error) {
      this.dirty = true;
      this.setFallback(true, coerceError(error).message);
      return false;
    }
  }

  private acquireLocally(ip: string, max: number, reason: string): { allowed: boolean; held: number } {
    this.setFallback(true, reason);
    const allowed = this.local.tryAcquire(ip, max);
    return { allowed, held: this.local.count(ip) };
  }

  private setFallback(active: boolean, reason?: string): void {
    if (active === this.fallback || this.closed) return;
    this.fallback = active;
    if (active) this.options.logger.warn({ reason }, "connection limits fell back to per-instance memory: Redis is unreachable");
    else this.options.logger.info({ connections: this.local.total }, "cluster-wide connection limits resumed");
    this.options.onFallback?.(active);
  }

  private ready(): boolean {
    return this.client.status === "ready";
  }

  /** Stop the heartbeat and drop our hash, so a clean stop frees its slots at once. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    await this.syncing?.catch(() => undefined);
    if (this.ready()) {
      await this.client
        .multi()
        .del(this.ownKey)
        .srem(this.instancesKey, this.options.instanceId)
        .exec()
        .catch(() => undefined);
    }
  }
}
