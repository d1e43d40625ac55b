import { expect } from "chai";
import type { Gateway } from "../src/gateway.js";
import { connect, connectError, eventually, token, type TestSocket } from "./support/client.js";
import { startCluster } from "./support/cluster.js";
import { redisClient, redisSlotCount } from "./support/limits.js";
import { startRedisServer } from "./support/redis-server.js";

const fallback = async (gateway: Gateway) => (await gateway.metrics.limiterFallback.get()).values[0]?.value;

describe("connection limits when Redis goes away", () => {
  it("keeps admitting under per-instance memory limits while Redis is down, and holds the cluster-wide cap again once it returns", async function () {
    this.timeout(90_000);
    const redis = await startRedisServer();
    const cluster = await startCluster(2, {
      redisUrl: redis.url,
      // the rate limiter runs too, so its Redis store and its insurance are both exercised
      env: { MAX_CONNECTIONS_PER_IP: "3", CONNECTION_RATE_PER_IP: "1000/60s" },
    });
    const [g0, g1] = cluster.gateways as [Gateway, Gateway];
    const [u0, u1] = cluster.urls as [string, string];
    const jwt = await token();
    const refused = async (url: string) => (await connectError(url, { token: jwt })).data?.code;
    const on0: TestSocket[] = [await connect(u0, { token: jwt }), await connect(u0, { token: jwt })];
    const on1: TestSocket[] = [await connect(u1, { token: jwt })];
    expect(await refused(u0)).to.equal("TOO_MANY_CONNECTIONS");
    expect(await refused(u1)).to.equal("TOO_MANY_CONNECTIONS");
    expect(await fallback(g0)).to.equal(0);

    await redis.stop("SIGKILL");
    await eventually(async () => (await fallback(g0)) === 1 && (await fallback(g1)) === 1, "both instances to report the fallback", 20_000);
    // per-instance memory limits: each instance admits up to the cap on its own
    on1.push(await connect(u1, { token: jwt }), await connect(u1, { token: jwt }));
    expect(await refused(u1)).to.equal("TOO_MANY_CONNECTIONS");
    on0.push(await connect(u0, { token: jwt }));
    expect(await refused(u0)).to.equal("TOO_MANY_CONNECTIONS");
    // a release during the outage cannot reach Redis; it must not be lost either
    on0.pop()!.disconnect();
    await eventually(async () => (await connect(u0, { token: jwt }).then((s) => on0.push(s), () => 0)) > 0, "the slot freed during the outage");
    // g0 holds 3, g1 holds 3: twice the cap, admitted while the cluster could not be asked

    await redis.start();
    await eventually(async () => (await fallback(g0)) === 0 && (await fallback(g1)) === 0, "cluster-wide limits to resume", 30_000);
    const counter = redisClient(redis.url);
    // the connections admitted during the outage are back in the cluster count, none twice
    await eventually(async () => (await redisSlotCount(counter, cluster.prefix, "127.0.0.1")) === 6, "the cluster count to be rebuilt");
    expect(await refused(u0)).to.equal("TOO_MANY_CONNECTIONS");
    expect(await refused(u1)).to.equal("TOO_MANY_CONNECTIONS");

    // down to 2 cluster-wide: exactly one more fits, wherever it lands
    for (const socket of [...on0.splice(0), on1.pop()!]) socket.disconnect();
    await eventually(async () => (await redisSlotCount(counter, cluster.prefix, "127.0.0.1")) === 2, "the releases to reach Redis");
    on0.push(await connect(u0, { token: jwt }));
    expect(await refused(u0)).to.equal("TOO_MANY_CONNECTIONS");
    expect(await refused(u1)).to.equal("TOO_MANY_CONNECTIONS");
    expect(await redisSlotCount(counter, cluster.prefix, "127.0.0.1")).to.equal(3);
  });
});
