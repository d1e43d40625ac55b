import { expect } from "chai";
import { connect, connectError as rawConnectError, eventually, request, token, type ConnectOptions, type TestSocket } from "./support/client.js";
import { startCluster, type ClusterMode } from "./support/cluster.js";
import { redisClient, redisSlotCount, rejected } from "./support/limits.js";
import { sharedRedisCluster } from "./support/redis-cluster.js";

const IP = "127.0.0.1";

/** a handshake expected to fail, with a valid token so only the limit under test can reject it */
async function connectError(url: string, options: ConnectOptions = {}) {
  return rawConnectError(url, { token: await token(), ...options });
}

// the same behaviour from the memory driver (single node) and the Redis driver (3 instances), on one Redis and on a Redis Cluster
for (const mode of ["single", "classic", "redis-cluster"] as ClusterMode[]) {
  describe(`connection limits per IP (${mode})`, () => {
    const n = mode === "single" ? 1 : 3;

    it("admits MAX_CONNECTIONS_PER_IP connections from one IP across the instances and rejects the next on any of them", async () => {
      const cluster = await startCluster(n, { mode, env: { MAX_CONNECTIONS_PER_IP: "10" } });
      const sockets: TestSocket[] = [];
      for (let i = 0; i < 10; i++) sockets.push(await connect(cluster.urls[i % n]!, { sub: `u${i}` }));
      for (const [i, url] of cluster.urls.entries()) {
        const error = await connectError(url);
        expect(error.data, `instance ${i}`).to.deep.equal({ code: "TOO_MANY_CONNECTIONS", status: 429 });
        expect(await rejected(cluster.gateways[i]!, "TOO_MANY_CONNECTIONS")).to.equal(1);
      }
      for (const socket of sockets) expect(await request(socket, "ticket:subscribe", { ticketId: "1" })).to.include({ ok: true });
      // closing one frees exactly one slot, wherever the next attempt lands
      sockets.shift()!.disconnect();
      const last = cluster.urls[n - 1]!;
      let again: TestSocket | undefined;
      await eventually(async () => {
        again = await connect(last).catch(() => undefined);
        return again !== undefined;
      }, "a freed slot to admit one more connection");
      expect((await connectError(cluster.urls[0]!)).data).to.deep.include({ code: "TOO_MANY_CONNECTIONS" });
    });

    it("concurrent handshakes from one IP on every instance never overshoot the cap", async () => {
      const cluster = await startCluster(n, { mode, env: { MAX_CONNECTIONS_PER_IP: "10" } });
      const jwt = await token();
      const results = await Promise.all(
        Array.from({ length: 30 }, (_, i) => connect(cluster.urls[i % n]!, { token: jwt }).then(() => "ok", (e: { data?: { code: string } }) => e.data?.code)),
      );
      expect(results.filter((r) => r === "ok")).to.have.length(10);
      expect(results.filter((r) => r === "TOO_MANY_CONNECTIONS")).to.have.length(20);
    });

    it("a rejected attempt holds no slot: failed handshakes leave the count unchanged", async () => {
      const cluster = await startCluster(n, { mode, env: { MAX_CONNECTIONS_PER_IP: "2" } });
      for (let i = 0; i < 5; i++) {
        expect((await connectError(cluster.urls[i % n]!, { token: "not-a-jwt" })).data).to.deep.include({ code: "UNAUTHORIZED", status: 401 });
      }
      const a = await connect(cluster.urls[0]!);
      const b = await connect(cluster.urls[n - 1]!);
      for (let i = 0; i < 3; i++) expect((await connectError(cluster.urls[i % n]!)).data).to.deep.include({ code: "TOO_MANY_CONNECTIONS" });
      a.disconnect();
      b.disconnect();
      // still exactly two after rejections: both come back
      await eventually(async () => (await connect(cluster.urls[0]!).then(() => true, () => false)), "the first slot back");
      await eventually(async () => (await connect(cluster.urls[n - 1]!).then(() => true, () => false)), "the second slot back");
      expect((await connectError(cluster.urls[0]!)).data).to.deep.include({ code: "TOO_MANY_CONNECTIONS" });
    });

    it("100 connect/disconnect cycles, however they close, leave the count at zero", async function () {
      this.timeout(90_000);
      const cluster = await startCluster(n, { mode, env: { MAX_CONNECTIONS_PER_IP: "3" } });
      for (let i = 0; i < 100; i++) {
        const url = cluster.urls[i % n]!;
        const socket = await connect(url, { sub: `cycle${i}` });
        const gone = new Promise((resolve) => socket.once("disconnect", resolve));
        if (i % 3 === 0) socket.disconnect();
        else if (i % 3 === 1) cluster.gateways[i % n]!.io.in(socket.id!).disconnectSockets(true);
        else socket.io.engine.close(); // the transport dies without a socket.io goodbye
        await gone;
        // at most one socket is ever open, so 3 slots are plenty unless releases leak
      }
      if (mode !== "single") {
        const redis = mode === "redis-cluster" ? (await sharedRedisCluster()).client() : redisClient();
        await eventually(async () => (await redisSlotCount(redis, cluster.prefix, IP)) === 0, "the Redis count to return to zero");
      }
      // exactly the cap fits again: nothing leaked, nothing released twice
      const held: TestSocket[] = [];
      await eventually(async () => {
        const socket = await connect(cluster.urls[held.length % n]!).catch(() => undefined);
        if (socket) held.push(socket);
        return held.length === 3;
      }, "three connections after the cycles");
      for (const url of cluster.urls) expect((await connectError(url)).data).to.deep.include({ code: "TOO_MANY_CONNECTIONS" });
    });

    it("CONNECTION_RATE_PER_IP: too many new connections → RATE_LIMITED 429 with retryAfterMs", async () => {
      const cluster = await startCluster(n, { mode, env: { CONNECTION_RATE_PER_IP: "4/30s" } });
      const kept = await connect(cluster.urls[0]!);
      for (let i = 1; i < 4; i++) (await connect(cluster.urls[i % n]!)).disconnect();
      for (const [i, url] of cluster.urls.entries()) {
        const error = await connectError(url);
        expect(error.data).to.include({ code: "RATE_LIMITED", status: 429 });
        expect(error.data!.retryAfterMs).to.be.a("number").within(1, 30_000);
        expect(await rejected(cluster.gateways[i]!, "RATE_LIMITED")).to.equal(1);
      }
      // the connection already made is not affected by the rejections of its IP
      expect(await request(kept, "ticket:subscribe", { ticketId: "1" })).to.include({ ok: true });
    });

    it("0 disables both per-IP limits", async () => {
      const cluster = await startCluster(n, { mode, env: { MAX_CONNECTIONS_PER_IP: "0", CONNECTION_RATE_PER_IP: "0" } });
      const sockets = await Promise.all(Array.from({ length: 40 }, (_, i) => connect(cluster.urls[i % n]!, { sub: `z${i}` })));
      expect(sockets.every((s) => s.connected)).to.equal(true);
    });
  });
}

describe("MAX_CONNECTIONS per instance", () => {
  it("rejects with SERVER_FULL 503 on the full instance only, and frees the place on close", async () => {
    const cluster = await startCluster(2, { env: { MAX_CONNECTIONS: "3" } });
    const [full, other] = cluster.urls as [string, string];
    const sockets = [await connect(full), await connect(full), await connect(full)];
    const error = await connectError(full);
    expect(error.data).to.deep.equal({ code: "SERVER_FULL", status: 503 });
    expect(await rejected(cluster.gateways[0]!, "SERVER_FULL")).to.equal(1);
    // the other instance and the sockets already connected are unaffected
    const elsewhere = await connect(other);
    expect(elsewhere.connected).to.equal(true);
    expect(sockets.every((s) => s.connected)).to.equal(true);
    sockets[0]!.disconnect();
    await eventually(async () => (await connect(full).then(() => true, () => false)), "a place on the full instance");
  });
});

describe("client IP behind proxies (TRUST_PROXY)", () => {
  it("TRUST_PROXY=0: a forged X-Forwarded-For does not change the counted IP", async () => {
    const cluster = await startCluster(2, { env: { MAX_CONNECTIONS_PER_IP: "2", TRUST_PROXY: "0" } });
    await connect(cluster.urls[0]!, { extraHeaders: { "x-forwarded-for": "6.6.6.1" } });
    await connect(cluster.urls[1]!, { extraHeaders: { "x-forwarded-for": "6.6.6.2" } });
    const error = await connectError(cluster.urls[0]!, { extraHeaders: { "x-forwarded-for": "6.6.6.3" } });
    expect(error.data).to.deep.include({ code: "TOO_MANY_CONNECTIONS", status: 429 });
    const local = [...cluster.gateways[0]!.io.of("/").sockets.values()];
    expect(local.map((s) => s.data.ip)).to.deep.equal([IP]);
  });

  it("TRUST_PROXY=1: the right-most hop is the client; hops to its left cannot dodge the cap", async () => {
    const cluster = await startCluster(2, { env: { MAX_CONNECTIONS_PER_IP: "2", TRUST_PROXY: "1" } });
    const xff = (value: string) => ({ extraHeaders: { "x-forwarded-for": value } });
    await connect(cluster.urls[0]!, xff("203.0.113.7"));
    await connect(cluster.urls[1]!, xff("6.6.6.6, 203.0.113.7"));
    // forged left-hand hops and another spelling of the same address: still the same client
    expect((await connectError(cluster.urls[0]!, xff("9.9.9.9, ::ffff:203.0.113.7"))).data).to.deep.include({ code: "TOO_MANY_CONNECTIONS" });
    // a different right-most hop is a different client
    const other = await connect(cluster.urls[0]!, xff("203.0.113.7, 198.51.100.1"));
    expect(other.connected).to.equal(true);
    const ips = [...cluster.gateways[0]!.io.of("/").sockets.values()].map((s) => s.data.ip).sort();
    expect(ips).to.deep.equal(["198.51.100.1", "203.0.113.7"]);
  });

  it("IPv6 clients count per IPV6_PREFIX_LENGTH network (default /64)", async () => {
    const xff = (value: string) => ({ extraHeaders: { "x-forwarded-for": value } });
    const cluster = await startCluster(2, { env: { MAX_CONNECTIONS_PER_IP: "2", TRUST_PROXY: "1" } });
    await connect(cluster.urls[0]!, xff("2001:db8:1:2::1"));
    await connect(cluster.urls[1]!, xff("2001:db8:1:2:aaaa:bbbb:cccc:dddd"));
    // another address of the same /64 is the same customer
    expect((await connectError(cluster.urls[0]!, xff("2001:db8:1:2::99"))).data).to.deep.include({ code: "TOO_MANY_CONNECTIONS" });
    expect((await connect(cluster.urls[1]!, xff("2001:db8:1:3::1"))).connected).to.equal(true);
    // the sockets still carry their own address
    expect([...cluster.gateways[0]!.io.of("/").sockets.values()].map((s) => s.data.ip)).to.deep.equal(["2001:db8:1:2::1"]);

    const exact = await startCluster(1, { env: { MAX_CONNECTIONS_PER_IP: "1", TRUST_PROXY: "1", IPV6_PREFIX_LENGTH: "128" } });
    await connect(exact.urls[0]!, xff("2001:db8:9::1"));
    expect((await connect(exact.urls[0]!, xff("2001:db8:9::2"))).connected).to.equal(true);
    expect((await connectError(exact.urls[0]!, xff("2001:db8:9::1"))).data).to.deep.include({ code: "TOO_MANY_CONNECTIONS" });
  });
});
