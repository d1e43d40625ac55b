/**
 * The gateway on a real 3-master Redis Cluster (REDIS_CLUSTER=true, sharded adapter), two
 * instances: ordered delivery for tickets spread over every master, crash cleanup of per-IP slots
 * and presence through the shared cluster liveness, and recovery when a master restarts mid-load.
 * (The behavioural suites — rooms, presence, typing, connection limits, presence store — run on
 * the cluster too, parameterized in their own files.)
 */
import { expect } from "chai";
import type { Gateway } from "../src/gateway.js";
import { ticketRoom } from "../src/protocol.js";
import { collect, connect, connectError, eventually, request, token, type TestSocket } from "./support/client.js";
import { clusterEnv, startCluster } from "./support/cluster.js";
import { sql } from "./support/db.js";
import { range, recordHistory, type History } from "./support/history.js";
import { redisSlotCount } from "./support/limits.js";
import { Watcher } from "./support/presence.js";
import { spawnGateway, waitExit } from "./support/process.js";
import { sharedRedisCluster, startRedisCluster, type RedisClusterServer } from "./support/redis-cluster.js";

/** The shard channel @socket.io/redis-adapter uses for a room in dynamic mode. */
const roomChannel = (prefix: string, room: string) => `${prefix}:sio#/#${room}#`;

/** The presence promise (SPEC): heartbeat expiry 15 s + a sweep within ~6.25 s, with slack for a loaded machine. */
const CRASH_CLEANUP_MS = 30_000;

/** Tickets whose room channels land on every master, `perMaster` on each. */
async function ticketsOnEveryMaster(redis: RedisClusterServer, prefix: string, perMaster: number): Promise<string[]> {
  const byMaster = new Map<number, string[]>();
  for (let i = 0; [...byMaster.values()].filter((t) => t.length >= perMaster).length < 3; i++) {
    const ticketId = `c${i}`;
    const master = await redis.masterOf(roomChannel(prefix, ticketRoom(ticketId)));
    const list = byMaster.get(master.port) ?? [];
    if (list.length < perMaster) list.push(ticketId);
    byMaster.set(master.port, list);
  }
  return [...byMaster.values()].flat();
}

/** `count` events for each ticket, interleaved, in one transaction per round. */
async function publishRounds(databaseUrl: string, tickets: string[], rounds: number): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    await sql(databaseUrl, "SELECT realtime.publish_ticket_event(t, 'c', '{}') FROM unnest($1::text[]) AS t", [tickets]);
  }
}

async function subscribeAll(url: string, tickets: string[], sub: string): Promise<{ socket: TestSocket; history: History }> {
  const socket = await connect(url, { sub, tickets: ["*"] });
  const history = recordHistory(socket);
  for (const ticketId of tickets) expect(await request(socket, "ticket:subscribe", { ticketId }), ticketId).to.include({ ok: true });
  return { socket, history };
}

const readyz = async (gateway: Gateway) => (await fetch(`http://127.0.0.1:${gateway.port}/readyz`)).status;

describe("on a Redis Cluster", function () {
  this.timeout(90_000);

  it("updates for tickets on every master reach subscribers on both instances in seq order, no gap, no duplicate", async () => {
    const redis = await sharedRedisCluster();
    const cluster = await startCluster(2, { mode: "redis-cluster" });
    const tickets = await ticketsOnEveryMaster(redis, cluster.prefix, 4);
    const subscribers = await Promise.all(cluster.urls.map((url, i) => subscribeAll(url, tickets, `s${i}`)));
    for (const gateway of cluster.gateways) expect(await readyz(gateway)).to.equal(200);

    await publishRounds(cluster.databaseUrl, tickets, 15);
    await eventually(
      () => subscribers.every(({ history }) => tickets.every((t) => history.delivered.get(t)?.length === 15)),
      "15 updates of every ticket on both instances",
      20_000,
    );
    for (const { history } of subscribers) {
      for (const ticketId of tickets) expect(history.delivered.get(ticketId), ticketId).to.deep.equal(range(15));
      expect(history.duplicates, "duplicates").to.equal(0);
      expect(history.outOfOrder, "out-of-order or gapped arrivals").to.equal(0);
    }
  });

  it("gateway.evict() on one instance revokes the user's sockets on the other (server-side emits over sharded pub/sub)", async () => {
    const cluster = await startCluster(2, { mode: "redis-cluster" });
    const ann = await connect(cluster.urls[1]!, { sub: "ann" });
    expect(await request(ann, "ticket:subscribe", { ticketId: "T" })).to.include({ ok: true });
    const revoked = collect(ann, "ticket:revoked");
    cluster.gateways[0]!.evict("T", "ann", "reassigned");
    await eventually(() => revoked.length === 1, "ann to be revoked on the other instance");
    expect(revoked[0]).to.deep.equal({ ticketId: "T", reason: "reassigned" });
  });

  it("SIGKILL an instance: its per-IP slots and its viewers are gone within 30 s, and the cap holds cluster-wide", async () => {
    const redis = await sharedRedisCluster();
    const cluster = await startCluster(1, { mode: "redis-cluster", env: { MAX_CONNECTIONS_PER_IP: "6" } });
    const survivor = cluster.urls[0]!;
    const doomed = await spawnGateway({
      ...clusterEnv({ mode: "redis-cluster", databaseUrl: cluster.databaseUrl, prefix: cluster.prefix, redisUrl: redis.url, env: { MAX_CONNECTIONS_PER_IP: "6" } }),
      INSTANCE_ID: `doomed-${cluster.prefix.slice(-4)}`,
      LOG_LEVEL: "warn",
    });
    const ghosts: TestSocket[] = [];
    for (let i = 0; i < 3; i++) ghosts.push(await connect(doomed.url, { sub: `ghost${i}` }));
    const ghostWatcher = new Watcher(ghosts[0]!, "G", "ghost0");
    await ghostWatcher.subscribe();
    const stay = new Watcher(await connect(survivor, { sub: "stay" }), "G", "stay");
    await stay.subscribe();
    await connect(survivor, { sub: "x1" });
    await connect(survivor, { sub: "x2" });
    const counter = redis.client();
    expect(await redisSlotCount(counter, cluster.prefix, "127.0.0.1")).to.equal(6);
    expect((await connectError(survivor, { token: await token() })).data).to.deep.include({ code: "TOO_MANY_CONNECTIONS" });
    await eventually(() => JSON.stringify(stay.users) === JSON.stringify(["ghost0", "stay"]), "the survivor's client to see the ghost");

    doomed.kill("SIGKILL");
    const killedAt = Date.now();
    expect(await waitExit(doomed)).to.equal("SIGKILL");
    await eventually(() => JSON.stringify(stay.users) === JSON.stringify(["stay"]), "the dead instance's viewer to leave the list", CRASH_CLEANUP_MS, 100);
    const fresh: TestSocket[] = [];
    await eventually(
      async () => {
        const socket = await connect(survivor, { sub: `fresh${fresh.length}` }).catch(() => undefined);
        if (socket) fresh.push(socket);
        return fresh.length === 3;
      },
      "3 new connections in the dead instance's slots",
      CRASH_CLEANUP_MS,
      250,
    );
    expect(Date.now() - killedAt).to.be.below(CRASH_CLEANUP_MS);
    // the dead instance's slots are gone, not doubled: the cap holds again at exactly 6
    expect((await connectError(survivor, { token: await token() })).data).to.deep.include({ code: "TOO_MANY_CONNECTIONS" });
    expect(await redisSlotCount(counter, cluster.prefix, "127.0.0.1")).to.equal(6);
    // and the sweep deleted its hash and its presence index (nothing left to grow)
    await eventually(
      async () => (await counter.exists(`${cluster.prefix}:{gw}:limits:i:doomed-${cluster.prefix.slice(-4)}`, `${cluster.prefix}:{gw}:presence:i:doomed-${cluster.prefix.slice(-4)}`)) === 0,
      "the dead instance's keys to be swept",
      CRASH_CLEANUP_MS,
      250,
    );
  });

  for (const replicas of [0, 1]) {
    const what = replicas === 0 ? "a master restarts mid-load (no replicas)" : "a master dies mid-load and its replica takes over";
    it(`${what}: the gateways go unready, recover, and every subscriber ends with every seq`, async function () {
      this.timeout(120_000);
      const redis = await startRedisCluster({ nodeTimeoutMs: 1000, replicas });
      const cluster = await startCluster(2, { mode: "redis-cluster", redisUrl: redis.url });
      const tickets = await ticketsOnEveryMaster(redis, cluster.prefix, 2);
      const subscribers = await Promise.all(cluster.urls.map((url, i) => subscribeAll(url, tickets, `f${i}`)));
      // the master of the coordination slot: liveness, limits and presence lose their data with it
      // (without a replica) or move to the promoted replica
      const victim = await redis.masterOf(`${cluster.prefix}:{gw}:instances`);

      let published = 0;
      let stopping = false;
      const load = (async () => {
        while (!stopping) {
          await publishRounds(cluster.databaseUrl, tickets, 1);
          published += 1;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      })();
      await eventually(() => published >= 5, "load before the failure");
      await victim.stop("SIGKILL");
      await eventually(async () => (await Promise.all(cluster.gateways.map(readyz))).every((s) => s === 503), "both gateways to report unready", 20_000, 10);
      const duringOutage = published;
      await eventually(() => published >= duringOutage + 5, "events committed during the failure");
      if (replicas === 0) await victim.start();
      await redis.waitHealthy();
      await eventually(async () => (await Promise.all(cluster.gateways.map(readyz))).every((s) => s === 200), "both gateways ready again", 30_000);
      const afterRecovery = published;
      await eventually(() => published >= afterRecovery + 5, "load after the recovery");
      stopping = true;
      await load;

      await eventually(
        () => subscribers.every(({ history }) => tickets.every((t) => (history.delivered.get(t)?.length ?? 0) >= published)),
        `all ${published} rounds on both instances`,
        30_000,
        100,
      );
      for (const { history } of subscribers) {
        // de-duplicated by seq, as the package's client does: nothing lost, nothing invented
        for (const ticketId of tickets) expect([...(history.delivered.get(ticketId) ?? [])].sort((a, b) => a - b), ticketId).to.deep.equal(range(published));
      }
    });
  }
});
