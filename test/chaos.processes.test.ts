/**
 * Chaos, process side: the leader killed or frozen past its lease, PostgreSQL restarted, an
 * instance holding half the clients killed, a rolling restart. Clients reach the cluster through
 * a readiness-aware balancer the test owns and resubscribe with `sinceSeq` after a reconnect.
 */
import { expect } from "chai";
import { eventually } from "./support/client.js";
import { report, startChaos } from "./support/chaos.js";
import { sql } from "./support/db.js";
import { forEachEventSource } from "./support/event-sources.js";
import { waitExit } from "./support/process.js";

const tickets = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
const traffic = (url: string, above: number) =>
  eventually(async () => (await sql<{ n: number }>(url, "SELECT count(*)::int AS n FROM realtime.ticket_events"))[0]!.n > above, `more than ${above} events`, 20_000);

// the leader's faults and a PostgreSQL restart, once per event source
forEachEventSource(() =>
  describe("chaos: leader and PostgreSQL faults (real processes)", function () {
    this.timeout(120_000);

    it("SIGKILL of the leader mid-load: a standby takes over, nothing lost or twice", async () => {
      const chaos = await startChaos({ instances: 3 });
      await Promise.all([0, 1, 2].map((i) => chaos.spawn(i)));
      const ids = tickets("lk", 20);
      for (let i = 0; i < 9; i++) await chaos.client(chaos.balancer.url, ids.slice((i * 4) % 20, ((i * 4) % 20) + 6));
      const leader = await chaos.leader();
      chaos.writers.start(ids, 150);
      await traffic(chaos.databaseUrl, 150);
      const killedAt = Date.now();
      chaos.gateways[leader]!.kill("SIGKILL");
      await waitExit(chaos.gateways[leader]!);
      const next = await chaos.leader();
      const takeoverMs = Date.now() - killedAt;
      await traffic(chaos.databaseUrl, 450);
      const result = await chaos.verify();
      expect(next).to.not.equal(leader);
      report("leader SIGKILL", { ...result, takeoverMs });
    });

    it("SIGSTOP of the leader past its lease, then SIGCONT: one leader, nothing lost or twice", async () => {
      const chaos = await startChaos({ instances: 2, env: { LEADER_LEASE: "3s" } });
      await Promise.all([chaos.spawn(0), chaos.spawn(1)]);
      const ids = tickets("ls", 10);
      const leader = await chaos.leader();
      for (let i = 0; i < 4; i++) await chaos.client(chaos.gateways[i % 2]!.url, ids.slice(i * 2, i * 2 + 5));
      chaos.writers.start(ids, 100);
      await traffic(chaos.databaseUrl, 100);
      const frozen = chaos.gateways[leader]!;
      frozen.kill("SIGSTOP");
      const stoppedAt = Date.now();
      // the survivor must take over by itself while the frozen one still holds its session
      // (the frozen process cannot answer a scrape: its flag still reads 1 inside it, unseen)
      await eventually(
        async () => (await chaos.leader(1000).catch(() => -1)) === 1 - leader,
        "the standby to take over from the frozen leader",
        15_000,
        100,
      ).catch(async (error) => {
        frozen.kill("SIGCONT");
        throw error;
      });
      const takeoverMs = Date.now() - stoppedAt;
      expect(takeoverMs, "takeover within 10 s of the freeze").to.be.below(10_000);
      frozen.kill("SIGCONT");
      await traffic(chaos.databaseUrl, 500);
      const result = await chaos.verify();
      expect(await chaos.leader()).to.equal(1 - leader);
      report("leader SIGSTOP past its lease", { ...result, takeoverMs });
    });

    it("PostgreSQL restarted (fast shutdown) mid-load", async () => {
      const chaos = await startChaos({ instances: 2, privatePostgres: true });
      await Promise.all([chaos.spawn(0), chaos.spawn(1)]);
      const ids = tickets("pr", 10);
      for (let i = 0; i < 4; i++) await chaos.client(chaos.gateways[i % 2]!.url, ids.slice(i * 2, i * 2 + 5));
      chaos.writers.start(ids, 100);
      await traffic(chaos.databaseUrl, 100);
      await chaos.postgres!.stop();
      await chaos.postgres!.start();
      await traffic(chaos.databaseUrl, 300);
      const result = await chaos.verify();
      report("PostgreSQL restart", { ...result, writerFailures: chaos.writers.failures });
    });
  }),
);

describe("chaos: process faults (real processes)", function () {
  this.timeout(120_000);

  it("SIGKILL of an instance holding half the clients: they resume on the survivor from their last seq", async () => {
    const chaos = await startChaos({ instances: 2 });
    await Promise.all([chaos.spawn(0), chaos.spawn(1)]);
    const ids = tickets("hk", 20);
    for (let i = 0; i < 20; i++) await chaos.client(chaos.balancer.url, ids.slice(i % 16, (i % 16) + 5));
    expect(chaos.balancer.open.get(chaos.gateways[0]!.port)?.size).to.be.greaterThan(0);
    chaos.writers.start(ids, 150);
    await traffic(chaos.databaseUrl, 150);
    const killedAt = Date.now();
    chaos.gateways[0]!.kill("SIGKILL");
    await waitExit(chaos.gateways[0]!);
    await eventually(() => chaos.clients.every((c) => c.socket.connected), "every client reconnected", 30_000);
    const resumedMs = Date.now() - killedAt;
    await traffic(chaos.databaseUrl, 600);
    const result = await chaos.verify();
    report("instance SIGKILL, half the clients", { ...result, resumedMs });
  });

  it("a rolling restart under load: SIGTERM each instance in turn, start a fresh one", async () => {
    const chaos = await startChaos({ instances: 2 });
    await Promise.all([chaos.spawn(0), chaos.spawn(1)]);
    const ids = tickets("rr", 10);
    for (let i = 0; i < 10; i++) await chaos.client(chaos.balancer.url, ids.slice(i % 6, (i % 6) + 5));
    chaos.writers.start(ids, 100);
    for (const i of [0, 1]) {
      await traffic(chaos.databaseUrl, 100 + i * 300);
      const old = chaos.gateways[i]!;
      old.kill("SIGTERM");
      await waitExit(old);
      await chaos.spawn(i);
      await eventually(() => chaos.clients.every((c) => c.socket.connected), "every client reconnected", 30_000);
    }
    await traffic(chaos.databaseUrl, 800);
    const result = await chaos.verify();
    report("rolling restart", result);
  });
});
