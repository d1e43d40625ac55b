/**
 * Cluster-wide concurrent connections per IP, crash-safe.
 *
 * Each instance owns one Redis hash (ip → connections it holds); the cluster count of an IP is the
 * sum over the hashes of the instances that the shared cluster liveness (src/cluster/liveness.ts)
 * still counts as alive. A SIGKILLed or OOM-killed instance stops beating, so its slots stop
 * counting `ttlMs` after its last heartbeat (15 s by default) and its hash is deleted by the next
 * sweep, with no operator action. The instance's in-memory `LocalSlots` is the truth: every
 * heartbeat rewrites the hash from it, which also heals whatever a Redis outage, a failed release
 * or a Redis restart left behind. While Redis is unreachable the limit is enforced per instance
 * from `LocalSlots` (the fallback), and the first successful rewrite after it returns puts the
 * connections admitted meanwhile back into the cluster count.
 *
 * Redis Cluster: every key here shares the `{gw}` hash tag with the liveness set, and the acquire
 * script declares every key it reads: the caller passes the hashes of the live instances it knows
 * of; the script checks that list against the liveness set and, when an instance came or went,
 * answers with the current list instead, and the caller retries once with it.
 *
 * rate-limiter-flexible counts events in windows; it has no lease that dies with its holder, so
 * this part is two small Lua scripts instead.
 */
import { coerceError } from "../errors.js";
import { withTimeout } from "../lifecycle.js";
import type { Logger } from "../logger.js";
import type { RedisConnection } from "../redis.js";
import type { Liveness } from "../cluster/liveness.js";
import { LocalSlots } from "./local-slots.js";
import { RedisBatch } from "../redis-batch.js";

/**
 * KEYS: liveness set, own hash, the other live instances' hashes. ARGV: ip, max, own id, hash
 * expiry (ms), liveness ttl (ms), the other instances' ids in KEYS order. {-1, 0, ids...} when the
 * list is stale. Taking a slot is a heartbeat too: a new instance counts for the others from its
 * first admission on, not from its first timer beat.
 */
const ACQUIRE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'GT', now + tonumber(ARGV[5]), ARGV[3])
local others = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do
  if id ~= ARGV[3] then others[#others + 1] = id end
end
local stale = #others ~= #ARGV - 5
if not stale then
  local given = {}
  for i = 6, #ARGV do given[ARGV[i]] = true end
  for _, id in ipairs(others) do if not given[id] then stale = true end end
end
if stale then
  local reply = { -1, 0 }
  for _, id in ipairs(others) do reply[#reply + 1] = id end
  return reply
end
local total = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
for i = 3, #KEYS do total = total + tonumber(redis.call('HGET', KEYS[i], ARGV[1]) or '0') end
if tonumber(ARGV[2]) > 0 and total >= tonumber(ARGV[2]) then return {0, total} end
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return {1, total + 1}
`;

const RELEASE = `
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 1
`;

/** HSET arguments per command while rewriting a hash, well under Lua's and Redis' argument limits */
const CHUNK = 500;

export interface RedisSlotsOptions {
  client: RedisConnection;
  /** the shared cluster liveness: its heartbeat rewrites our hash, its sweep deletes dead ones */
  liveness: Liveness;
  logger: Logger;
  /** called with true while the per-instance fallback is in force */
  onFallback?: (active: boolean) => void;
}

interface SlotCommands {
  rgSlotAcquire(...args: Array<string | number>): Promise<Array<number | string>>;
  rgSlotRelease(own: string, ip: string): Promise<number>;
}

export class RedisSlots {
  readonly local = new LocalSlots();
  private readonly client: RedisConnection & SlotCommands;
  /** acquires of one event-loop turn share one write (their order against releases and rewrites: see acquire) */
  private readonly batch: RedisBatch;
  private readonly liveness: Liveness;
  private readonly hashPrefix: string;
  private readonly ownKey: string;
  /** a safety expiry only: liveness decides who counts; this frees a hash nobody swept */
  private readonly hashTtlMs: number;
  /** the other live instances, as the last acquire learned them */
  private others: string[] = [];
  /** the hash may differ from `local`: rewrite it before trusting the cluster sum again */
  private dirty = true;
  private fallback = false;
  private inflight = 0;
  private idle: Array<() => void> = [];
  private syncing: Promise<boolean> | undefined;
  private closed = false;

  constructor(private readonly options: RedisSlotsOptions) {
    this.client = options.client as RedisConnection & SlotCommands;
    this.batch = new RedisBatch(options.client);
    this.liveness = options.liveness;
    // the {gw} hash tag of the liveness set: every key the scripts touch lives in one cluster slot
    this.hashPrefix = `${this.liveness.base}:limits:i:`;
    this.ownKey = this.hashPrefix + this.liveness.instanceId;
    this.hashTtlMs = this.liveness.ttlMs * 4;
    if (typeof (options.client as Partial<SlotCommands>).rgSlotAcquire !== "function") {
      // the key count varies with the number of instances: given per call
      options.client.defineCommand("rgSlotAcquire", { lua: ACQUIRE });
      options.client.defineCommand("rgSlotRelease", { numberOfKeys: 1, lua: RELEASE });
    }
    this.liveness.onBeat(({ lost }) => {
      if (lost) this.dirty = true;
      return this.sync();
    });
    this.liveness.onDead((id) => Promise.resolve(this.client.del(this.hashPrefix + id)));
  }

  /** One acquire, retried once when the list of live instances changed under it. */
  private async runAcquire(ip: string, max: number): Promise<[number, number]> {
    for (let attempt = 0; ; attempt++) {
      const others = this.others;
      const keys = [this.liveness.key, this.ownKey, ...others.map((id) => this.hashPrefix + id)];
      const reply = await this.batch.call<Array<number | string>>("rgSlotAcquire", [keys.length, ...keys, ip, max, this.liveness.instanceId, this.hashTtlMs, this.liveness.ttlMs, ...others]);
      const [allowed, held, ...live] = reply;
      if (Number(allowed) !== -1) return [Number(allowed), Number(held)];
      this.others = live.map(String);
      if (attempt >= 2) throw new Error("the list of live instances keeps changing");
    }
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
      const [allowed, held] = await this.runAcquire(ip, max);
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
      if (entries.length > 0) multi.pexpire(this.ownKey, this.hashTtlMs);
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

  /** Drop our hash, so a clean stop frees its slots at once. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.syncing?.catch(() => undefined);
    if (this.ready()) await withTimeout(Promise.resolve(this.client.del(this.ownKey)), 2000, "slot cleanup").catch(() => undefined);
  }
}
