/** The PresenceStore behaviour, run against the memory driver and the Redis driver (real Redis). */
import { expect } from "chai";
import { Cluster } from "ioredis";
import { silentLogger } from "../src/logger.js";
import { createMemoryPresence } from "../src/presence/memory.js";
import { createRedisPresence, type RedisPresenceOptions, type RedisPresenceStore } from "../src/presence/redis.js";
import type { PresenceSnapshot, PresenceStore } from "../src/presence/types.js";
import { createClusterClient, createRedisClient, type RedisConnection } from "../src/redis.js";
import { onCleanup } from "./support/cleanup.js";
import { eventually } from "./support/client.js";
import { randomPrefix } from "./support/cluster.js";
import { TEST_REDIS_URL } from "./support/env.js";
import { sharedRedisCluster } from "./support/redis-cluster.js";

const ann = { userId: "ann", name: "Ann", role: "agent" };
const bob = { userId: "bob", name: "Bob", role: "agent" };
const cid = { userId: "cid", name: "Cid", role: "customer" };

/** One Redis, or the shared Redis Cluster: the same behaviour on both. */
interface Backend {
  name: string;
  client(): Promise<RedisConnection>;
}

const single: Backend = {
  name: "redis",
  async client() {
    const client = createRedisClient(TEST_REDIS_URL, "presence-test", silentLogger);
    onCleanup("redis client", () => client.quit().catch(() => client.disconnect()));
    return client;
  },
};

const cluster: Backend = {
  name: "redis-cluster",
  async client() {
    const client = createClusterClient((await sharedRedisCluster()).url, "presence-test", silentLogger);
    onCleanup("redis cluster client", () => client.quit().catch(() => client.disconnect()));
    return client;
  },
};

/** Delete this test's keys (never FLUSHALL: Redis is shared); on a cluster, on every master. */
function cleanupPrefix(backend: Backend, prefix: string): void {
  onCleanup(`redis keys ${prefix}`, async () => {
    const client = await backend.client();
    const nodes = client instanceof Cluster ? client.nodes("master") : [client];
    for (const node of nodes) {
      let cursor = "0";
      do {
        const [next, keys] = await node.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 500);
        for (const key of keys) await node.del(key);
        cursor = next;
      } while (cursor !== "0");
    }
  });
}

async function redisStore(backend: Backend, prefix: string, instanceId: string, extra: Partial<RedisPresenceOptions> = {}): Promise<RedisPresenceStore> {
  const store = createRedisPresence({ client: extra.client ?? (await backend.client()), prefix, instanceId, logger: silentLogger, ...extra });
  onCleanup(`presence ${instanceId}`, () => store.close());
  return store;
}

const drivers: Array<[string, () => Promise<PresenceStore>]> = [
  ["memory", async () => createMemoryPresence()],
  ...[single, cluster].map((backend): [string, () => Promise<PresenceStore>] => [
    backend.name,
    async () => {
      const prefix = randomPrefix();
      cleanupPrefix(backend, prefix);
      return redisStore(backend, prefix, "solo");
    },
  ]),
];

for (const [driver, create] of drivers) {
  describe(`presence store (${driver})`, () => {
    it("lists each viewer once, sorted, and reports changes with a growing rev", async () => {
      const store = await create();
      const first = await store.join("t1", "s-bob", bob);
      expect(first).to.deep.include({ viewers: [bob], changed: true });
      const second = await store.join("t1", "s-ann", ann);
      expect(second.viewers).to.deep.equal([ann, bob]);
      expect(second.changed).to.equal(true);
      expect(second.rev).to.be.greaterThan(first.rev);
      expect(await store.viewers("t1")).to.deep.equal({ viewers: [ann, bob], rev: second.rev });
      expect((await store.viewers("other")).viewers).to.deep.equal([]);
    });

    it("counts a user with two sockets once, until the last one leaves", async () => {
      const store = await create();
      const one = await store.join("t1", "tab-1", ann);
      const two = await store.join("t1", "tab-2", ann);
      expect(two).to.deep.include({ viewers: [ann], rev: one.rev, changed: false });
      const leftOne = await store.leave("t1", "tab-1", "ann");
      expect(leftOne).to.deep.include({ viewers: [ann], rev: one.rev, changed: false });
      const leftBoth = await store.leave("t1", "tab-2", "ann");
      expect(leftBoth.viewers).to.deep.equal([]);
      expect(leftBoth.changed).to.equal(true);
      expect(leftBoth.rev).to.be.greaterThan(one.rev);
    });

    it("ignores a leave of a socket that never joined, and keeps tickets apart", async () => {
      const store = await create();
      await store.join("t1", "s1", ann);
      await store.join("t2", "s2", bob);
      expect((await store.leave("t1", "nobody", "zed")).changed).to.equal(false);
      expect((await store.viewers("t1")).viewers).to.deep.equal([ann]);
      expect((await store.viewers("t2")).viewers).to.deep.equal([bob]);
    });

    it("never lets rev go back, even after a ticket empties", async () => {
      const store = await create();
      const revs: number[] = [];
      for (let i = 0; i < 3; i++) {
        revs.push((await store.join("t1", `s${i}`, { ...cid, userId: `u${i}` })).rev);
        revs.push((await store.leave("t1", `s${i}`, `u${i}`)).rev);
      }
      expect(revs).to.deep.equal([...revs].sort((a, b) => a - b));
      expect(new Set(revs).size).to.equal(revs.length);
    });
  });
}

for (const backend of [single, cluster]) describe(`presence store (${backend.name}, several instances)`, () => {
  let prefix: string;
  beforeEach(() => {
    prefix = randomPrefix();
    cleanupPrefix(backend, prefix);
  });

  /** Write a viewer held by an instance whose heartbeat expired at `expiresAt` (ms). */
  async function plantViewer(instanceId: string, expiresAt: number, ticketId: string, socketId: string, viewer: typeof ann): Promise<void> {
    const client = await backend.client();
    const base = `${prefix}:{gw}`;
    await client.zadd(`${base}:instances`, expiresAt, instanceId);
    await client.hset(`${base}:presence:t:${ticketId}`, socketId, JSON.stringify({ u: viewer.userId, n: viewer.name, r: viewer.role, i: instanceId }));
    await client.sadd(`${base}:presence:i:${instanceId}`, ticketId);
  }

  it("shares one list between instances", async () => {
    const a = await redisStore(backend, prefix, "a");
    const b = await redisStore(backend, prefix, "b");
    const first = await a.join("t1", "sa", ann);
    expect(first.remote, "no other instance holds a viewer: the announcement may stay local").to.equal(false);
    const change = await b.join("t1", "sb", bob);
    expect(change.viewers).to.deep.equal([ann, bob]);
    expect(change.remote, "instance a holds a viewer: announce cluster-wide").to.equal(true);
    expect(await a.viewers("t1")).to.deep.equal({ viewers: [ann, bob], rev: change.rev });
    const left = await a.leave("t1", "sa", "ann");
    expect(left.viewers).to.deep.equal([bob]);
    expect(left.remote).to.equal(true);
    expect((await b.leave("t1", "sb", "bob")).remote, "the last viewer left").to.equal(false);
  });

  it("hides a dead instance's viewers at once, and exactly one of two sweepers deletes and announces them", async () => {
    const a = await redisStore(backend, prefix, "a");
    const b = await redisStore(backend, prefix, "b");
    const announced: Array<[string, PresenceSnapshot]> = [];
    a.onChange((ticketId, snapshot) => announced.push([ticketId, snapshot]));
    b.onChange((ticketId, snapshot) => announced.push([ticketId, snapshot]));
    await a.join("t1", "sa", ann);
    await plantViewer("crashed", Date.now() + 60_000, "t1", "sx", cid);
    await plantViewer("crashed", Date.now() + 60_000, "t2", "sy", cid);
    expect((await a.viewers("t1")).viewers).to.deep.equal([ann, cid]);

    await plantViewer("crashed", Date.now() - 1, "t1", "sx", cid);
    expect((await b.viewers("t1")).viewers, "a dead instance's viewer is not listed").to.deep.equal([ann]);
    expect((await b.viewers("t2")).viewers).to.deep.equal([]);

    await Promise.all([a.sweep(), b.sweep(), a.sweep(), b.sweep()]);
    expect(announced.map(([ticketId, s]) => [ticketId, s.viewers]).sort()).to.deep.equal([
      ["t1", [ann]],
      ["t2", []],
    ]);
    const client = await backend.client();
    expect(await client.hkeys(`${prefix}:{gw}:presence:t:t1`)).to.deep.equal(["sa"]);
    expect(await client.exists(`${prefix}:{gw}:presence:i:crashed`)).to.equal(0);
    expect(await client.zscore(`${prefix}:{gw}:instances`, "crashed")).to.equal(null);
  });

  it("an instance declared dead while paused puts its viewers back at its next heartbeat", async () => {
    const a = await redisStore(backend, prefix, "a");
    const b = await redisStore(backend, prefix, "b");
    const announcedByA: PresenceSnapshot[] = [];
    a.onChange((_, snapshot) => announcedByA.push(snapshot));
    await a.join("t1", "sa", ann);
    await b.join("t1", "sb", bob);
    // a's heartbeat "expired" (as after a long GC pause or a network partition)
    await (await backend.client()).zadd(`${prefix}:{gw}:instances`, Date.now() - 1, "a");
    await b.sweep();
    expect((await b.viewers("t1")).viewers).to.deep.equal([bob]);
    await a.heartbeat();
    expect((await b.viewers("t1")).viewers).to.deep.equal([ann, bob]);
    expect(announcedByA.map((s) => s.viewers)).to.deep.equal([[ann, bob]]);
  });

  it("a graceful close removes the instance's viewers and announces it", async () => {
    const a = await redisStore(backend, prefix, "a");
    const b = await redisStore(backend, prefix, "b");
    const announced: PresenceSnapshot[] = [];
    a.onChange((_, snapshot) => announced.push(snapshot));
    await a.join("t1", "sa", ann);
    await b.join("t1", "sb", bob);
    await a.close();
    expect((await b.viewers("t1")).viewers).to.deep.equal([bob]);
    expect(announced.map((s) => s.viewers)).to.deep.equal([[bob]]);
  });

  it("a restarted instance with the same id drops the viewers its previous life left behind", async () => {
    const crashedClient = await backend.client();
    const before = createRedisPresence({ client: crashedClient, prefix, instanceId: "pod-0", logger: silentLogger });
    await before.join("t1", "old-socket", ann);
    crashedClient.disconnect(); // the process died: nothing was cleaned up
    await before.close();
    const b = await redisStore(backend, prefix, "b");
    expect((await b.viewers("t1")).viewers).to.deep.equal([ann]);

    const after = await redisStore(backend, prefix, "pod-0");
    const announced: PresenceSnapshot[] = [];
    after.onChange((_, snapshot) => announced.push(snapshot));
    await after.heartbeat();
    await eventually(async () => (await b.viewers("t1")).viewers.length === 0, "the leftover viewer to disappear");
    expect(announced.map((s) => s.viewers)).to.deep.equal([[]]);
  });
});
