/**
 * Cluster presence in Redis, without ghosts: the shared cluster liveness (src/cluster/liveness.ts)
 * beats every instance's heartbeat; the viewers of an instance whose heartbeat expired drop out of
 * every list at once and are deleted by the liveness sweep that any live instance runs. The sweep's delete is atomic, so exactly one sweeper sees the
 * change and announces it (and the `rev` in each list makes a late duplicate harmless anyway).
 *
 * Worst case for a SIGKILLed instance: `ttlMs` until its viewers leave the lists, plus at most
 * ~1.25 × `sweepMs` until a sweep announces it: 15 s + 6.25 s with the defaults, under the 30 s promised.
 *
 * This instance keeps its own entries in memory too, so after an outage (or after being declared
 * dead while paused) the next heartbeat rewrites them exactly (`resync`).
 */
import { createLiveness, type Liveness, type LivenessOptions } from "../cluster/liveness.js";
import { coerceError } from "../errors.js";
import { withTimeout } from "../lifecycle.js";
import type { Logger } from "../logger.js";
import type { Viewer } from "../protocol.js";
import type { RedisConnection } from "../redis.js";
import { JOIN, LEAVE, PURGE, SYNC, VIEWERS } from "./redis-scripts.js";
import { RedisBatch } from "../redis-batch.js";
import type { PresenceChange, PresenceSnapshot, PresenceStore } from "./types.js";

/** The liveness options (for a liveness of its own), or the shared cluster liveness. */
export interface RedisPresenceOptions extends LivenessOptions {
  /** the shared cluster liveness; when not given, one of its own with the liveness timings */
  liveness?: Liveness;
}

export interface RedisPresenceStore extends PresenceStore {
  /** run one heartbeat now (tests; normally on a timer) */
  heartbeat(): Promise<void>;
  /** run one sweep now (tests; normally on a timer) */
  sweep(): Promise<void>;
}

type Reply = [number, number, number, number, ...string[]];
type Scripted = RedisConnection & Record<string, (...args: Array<string | number>) => Promise<unknown>>;

const COMMANDS = {
  rgPresenceJoin: { numberOfKeys: 4, lua: JOIN },
  rgPresenceLeave: { numberOfKeys: 4, lua: LEAVE },
  rgPresenceViewers: { numberOfKeys: 3, lua: VIEWERS },
  rgPresencePurge: { numberOfKeys: 3, lua: PURGE },
  rgPresenceSync: { numberOfKeys: 4, lua: SYNC },
};

function parse(reply: unknown): PresenceChange & { extra: number } {
  const [changed, rev, extra, remote, ...encoded] = reply as Reply;
  const viewers = encoded
    .map((text) => {
      const [userId, name, role] = JSON.parse(text) as [string, string, string];
      return { userId, name, role };
    })
    .sort((a, b) => (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0));
  return { viewers, rev: Number(rev), changed: changed === 1, remote: Number(remote) !== 0, extra: Number(extra) };
}

export function createRedisPresence(options: RedisPresenceOptions): RedisPresenceStore {
  const ownLiveness = options.liveness
    ? undefined
    : createLiveness({ client: options.client, prefix: options.prefix, instanceId: options.instanceId, logger: options.logger, heartbeatMs: options.heartbeatMs, ttlMs: options.ttlMs, sweepMs: options.sweepMs });
  const liveness = options.liveness ?? ownLiveness!;
  const { ttlMs, instanceId } = liveness;
  const log = options.logger.child({ component: "presence" });
  const redis = options.client as Scripted;
  for (const [name, definition] of Object.entries(COMMANDS)) redis.defineCommand(name, definition);
  // the joins and leaves of one turn share one write, in the order they were made (a leave never
  // overtakes its join); a resync sent before them writes `local`, which already holds their effect
  const batch = new RedisBatch(options.client);

  const base = `${liveness.base}:presence`;
  const instances = liveness.key;
  const rev = `${base}:rev`;
  const ticketKey = (ticketId: string) => `${base}:t:${ticketId}`;
  const ticketsOf = (id: string) => `${base}:i:${id}`;
  const mine = ticketsOf(instanceId);

  /** this instance's entries: ticket → socket → entry json */
  const local = new Map<string, Map<string, string>>();
  const listeners: Array<(ticketId: string, snapshot: PresenceSnapshot) => void> = [];
  const pending = new Set<Promise<unknown>>();
  let beaten = false;
  // a write failed, or we were declared dead: the next heartbeat rewrites our entries. True at
  // start: a previous process with the same INSTANCE_ID may have left entries behind
  let dirty = true;
  let closed = false;
  let background: Promise<void> = Promise.resolve();

  function track<T>(promise: Promise<T>): Promise<T> {
    pending.add(promise);
    const done = () => pending.delete(promise);
    promise.then(done, done);
    return promise;
  }

  function announce(ticketId: string, change: PresenceChange): void {
    if (!change.changed) return;
    for (const listener of listeners) {
      try {
        listener(ticketId, { viewers: change.viewers, rev: change.rev });
      } catch (error) {
        log.warn({ err: coerceError(error), ticketId }, "presence listener failed");
      }
    }
  }

  async function failing<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      dirty = true;
      throw error;
    }
  }

  /** Make our entries in Redis exactly `local` (or nothing, at close), announcing what changed. */
  async function resync(leaving = false): Promise<void> {
    dirty = false;
    const remote = (await redis.smembers(mine)) as string[];
    for (const ticketId of new Set([...remote, ...local.keys()])) {
      const entries = leaving ? [] : [...(local.get(ticketId) ?? [])].flat();
      const reply = await redis.rgPresenceSync!(ticketKey(ticketId), instances, rev, mine, instanceId, ticketId, leaving ? 0 : ttlMs, ...entries);
      announce(ticketId, parse(reply));
    }
  }

  /** after each liveness beat: put our entries back if they may have been swept or lost */
  async function afterBeat({ ok, lost }: { ok: boolean; lost: boolean }): Promise<void> {
    if (!ok) {
      dirty = true;
      return;
    }
    beaten = true;
    if (!lost && !dirty) return;
    try {
      await resync();
    } catch (error) {
      dirty = true;
      log.debug({ err: coerceError(error) }, "presence resync failed");
    }
  }

  /** the liveness sweep found a dead instance: delete and announce its viewers */
  async function purge(id: string): Promise<void> {
    const tickets = (await redis.smembers(ticketsOf(id))) as string[];
    for (const ticketId of tickets) announce(ticketId, parse(await redis.rgPresencePurge!(ticketKey(ticketId), instances, rev)));
    await redis.del(ticketsOf(id));
    if (tickets.length > 0) log.info({ deadInstance: id, tickets: tickets.length }, "swept the viewers of a dead instance");
  }

  liveness.onBeat((info) => {
    if (closed) return;
    return (background = background.then(() => afterBeat(info)));
  });
  liveness.onDead(purge);

  return {
    heartbeat: () => liveness.beat(),
    sweep: () => liveness.sweep(),
    join(ticketId, socketId, viewer: Viewer) {
      const entry = JSON.stringify({ u: viewer.userId, n: viewer.name, r: viewer.role, i: instanceId });
      let sockets = local.get(ticketId);
      if (!sockets) local.set(ticketId, (sockets = new Map()));
      sockets.set(socketId, entry);
      return track(
        failing(async () => {
          const { extra: wasAlive, ...change } = parse(
            await batch.call("rgPresenceJoin", [ticketKey(ticketId), instances, rev, mine, socketId, entry, ticketId, instanceId, ttlMs]),
          );
          if (wasAlive === 0 && beaten) dirty = true;
          beaten = true;
          return change;
        }),
      );
    },
    leave(ticketId, socketId) {
      const sockets = local.get(ticketId);
      sockets?.delete(socketId);
      const last = !sockets || sockets.size === 0;
      if (sockets?.size === 0) local.delete(ticketId);
      return track(
        failing(async () => {
          const { extra: _, ...change } = parse(await batch.call("rgPresenceLeave", [ticketKey(ticketId), instances, rev, mine, socketId, ticketId, last ? "1" : "0", instanceId]));
          return change;
        }),
      );
    },
    async viewers(ticketId) {
      const { viewers, rev: at } = parse(await redis.rgPresenceViewers!(ticketKey(ticketId), instances, rev));
      return { viewers, rev: at };
    },
    onChange(listener) {
      listeners.push(listener);
    },
    async close() {
      if (closed) return;
      closed = true;
      const cleanup = async () => {
        await Promise.allSettled([...pending, background]);
        local.clear();
        await resync(true);
        await redis.del(mine);
      };
      // a dead Redis must not hold up shutdown: the heartbeat expiry cleans up after us instead
      await withTimeout(cleanup(), 3000, "presence cleanup").catch((error: unknown) =>
        log.warn({ err: coerceError(error) }, "presence cleanup incomplete; the sweep of other instances will finish it"),
      );
      await ownLiveness?.close();
    },
  };
}
