import { expect } from "chai";
import { SignJWT } from "jose";
import { collect, connect, eventually, quietPeriod, request, token, type TestSocket } from "./support/client.js";
import { startCluster } from "./support/cluster.js";
import { sql } from "./support/db.js";
import { TEST_JWT_SECRET } from "./support/env.js";
import { Watcher, allSee } from "./support/presence.js";
import { forEachEventSource } from "./support/event-sources.js";

async function evictedAtMs(databaseUrl: string, ticketId: string, userId: string): Promise<number> {
  const rows = await sql<{ evicted_at: Date }>(databaseUrl, "SELECT evicted_at FROM realtime.evictions WHERE ticket_id = $1 AND user_id = $2", [ticketId, userId]);
  return rows[0]!.evicted_at.getTime();
}

/** A token whose iat is later than `ms` (iat has whole seconds: wait for the next one). */
async function tokenIssuedAfter(ms: number, sub: string): Promise<string> {
  await eventually(() => Math.floor(Date.now() / 1000) * 1000 > ms, "the clock to reach the second after the eviction", 3000);
  return token({ sub });
}

async function subscribeCode(socket: TestSocket, ticketId: string): Promise<string> {
  const ack = await request(socket, "ticket:subscribe", { ticketId });
  return ack.ok ? "ok" : ack.error.code;
}

forEachEventSource(() => describe("eviction", () => {
  it("realtime.evict() removes the user's sockets on every instance within a second, with ticket:revoked", async () => {
    const cluster = await startCluster(2);
    const annA = await connect(cluster.urls[0]!, { sub: "ann" });
    const annB = await connect(cluster.urls[1]!, { sub: "ann" });
    const revoked = [collect(annA, "ticket:revoked"), collect(annB, "ticket:revoked")];
    const annUpdates = [collect(annA, "ticket:update"), collect(annB, "ticket:update")];
    for (const s of [annA, annB]) for (const t of ["T", "U"]) expect(await subscribeCode(s, t)).to.equal("ok");
    const bob = new Watcher(await connect(cluster.urls[0]!, { sub: "bob" }), "T", "bob");
    await bob.subscribe();
    const bobUpdates = collect(bob.socket, "ticket:update");
    await allSee([bob], ["ann", "bob"], "ann and bob on T");

    await sql(cluster.databaseUrl, "SELECT realtime.evict($1, $2)", ["T", "ann"]);
    const evictedAt = Date.now();
    await eventually(() => revoked.every((list) => list.length === 1), "both of ann's sockets to be revoked", 5000, 10);
    expect(Date.now() - evictedAt, "eviction took").to.be.below(1000);
    for (const list of revoked) expect(list[0]).to.deep.equal({ ticketId: "T", reason: "evicted" });
    await allSee([bob], ["bob"], "ann evicted");

    await sql(cluster.databaseUrl, "SELECT realtime.publish_ticket_event('T', 'note', '{}'), realtime.publish_ticket_event('U', 'note', '{}')");
    await eventually(() => bobUpdates.length === 1 && annUpdates.every((list) => list.length === 1), "the updates");
    await quietPeriod(300);
    for (const list of annUpdates) expect(list.map((u) => u.ticketId), "ann keeps U, loses T").to.deep.equal(["U"]);
  });

  it("refuses a re-subscription until the user presents a token issued after the eviction", async () => {
    const cluster = await startCluster(2);
    const oldToken = await token({ sub: "ann", ttlSeconds: 3600 });
    const ann = await connect(cluster.urls[1]!, { token: oldToken });
    const carl = await connect(cluster.urls[1]!, { sub: "carl" });
    await request(ann, "ticket:subscribe", { ticketId: "T" });
    const revoked = collect(ann, "ticket:revoked");
    await sql(cluster.databaseUrl, "SELECT realtime.evict('T', 'ann')");
    await eventually(() => revoked.length === 1, "ann to be revoked");
    const at = await evictedAtMs(cluster.databaseUrl, "T", "ann");

    const refused = await request(ann, "ticket:subscribe", { ticketId: "T" });
    expect(!refused.ok && refused.error.code).to.equal("FORBIDDEN");
    expect(!refused.ok && refused.error.message).to.match(/removed from ticket T at .*token issued after/);
    expect(await subscribeCode(ann, "U"), "other tickets are unaffected").to.equal("ok");
    expect(await subscribeCode(carl, "T"), "other users are unaffected").to.equal("ok");
    // with the old token on another instance, and on an instance started after the eviction
    expect(await subscribeCode(await connect(cluster.urls[0]!, { token: oldToken }), "T")).to.equal("FORBIDDEN");
    const late = await cluster.add();
    expect(await subscribeCode(await connect(`http://127.0.0.1:${late.port}`, { token: oldToken }), "T"), "on an instance started later").to.equal("FORBIDDEN");
    const tokenWithoutIat = await new SignJWT({ tickets: ["*"] })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("ann")
      .setExpirationTime("1h")
      .sign(new TextEncoder().encode(TEST_JWT_SECRET));
    expect(await subscribeCode(await connect(`http://127.0.0.1:${late.port}`, { token: tokenWithoutIat }), "T"), "no iat, no proof").to.equal("FORBIDDEN");

    const fresh = await tokenIssuedAfter(at, "ann");
    expect((await request(ann, "auth:refresh", { token: fresh })).ok).to.equal(true);
    expect(await subscribeCode(ann, "T"), "after refreshing to a newer token").to.equal("ok");
    expect(await subscribeCode(await connect(`http://127.0.0.1:${late.port}`, { token: fresh }), "T"), "a new connection with it").to.equal("ok");
  });

  it("gateway.evict() reaches the user's sockets on other instances, with the given reason", async () => {
    const cluster = await startCluster(2);
    const ann = await connect(cluster.urls[1]!, { sub: "ann" });
    await request(ann, "ticket:subscribe", { ticketId: "T" });
    const revoked = collect(ann, "ticket:revoked");
    cluster.gateways[0]!.evict("T", "ann", "reassigned to another team");
    await eventually(() => revoked.length === 1, "ann to be revoked");
    expect(revoked[0]).to.deep.equal({ ticketId: "T", reason: "reassigned to another team" });
    expect(await subscribeCode(ann, "T"), "the rule applies to server-side evictions too").to.equal("FORBIDDEN");
  });

  it("realtime.evict() rejects bad arguments with a clear error", async () => {
    const cluster = await startCluster(1);
    for (const [args, message] of [
      [["bad id!", "ann"], /ticket_id must be/],
      [["T", null], /user_id must be/],
      [["T", ""], /user_id must be/],
    ] as const) {
      let error: Error | undefined;
      await sql(cluster.databaseUrl, "SELECT realtime.evict($1, $2)", [...args]).catch((e: Error) => (error = e));
      expect(error?.message, JSON.stringify(args)).to.match(message);
    }
  });
}));
