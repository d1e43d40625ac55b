import { expect } from "chai";
import { collect, connect, eventually, nextEvent, quietPeriod, rawRequest, request, token } from "./support/client.js";
import { startCluster } from "./support/cluster.js";
import { sql } from "./support/db.js";
import { Watcher, allSee } from "./support/presence.js";

describe("auth:refresh", () => {
  it("a new token for the same user extends the connection past the old expiry", async () => {
    const cluster = await startCluster(1);
    const socket = await connect(cluster.urls[0]!, { sub: "ann", ttlSeconds: 3 });
    const expired = collect(socket, "auth:expired");
    const ack = await request(socket, "auth:refresh", { token: await token({ sub: "ann", ttlSeconds: 3600 }) });
    expect(ack.ok).to.equal(true);
    const expiresAt = ack.ok ? Date.parse(ack.expiresAt) : 0;
    expect(expiresAt).to.be.within(Date.now() + 3_590_000, Date.now() + 3_601_000);
    await quietPeriod(4500);
    expect(expired).to.be.empty;
    expect(socket.connected).to.equal(true);
    expect((await request(socket, "ticket:subscribe", { ticketId: "1" })).ok).to.equal(true);
  });

  it("refuses another user's, a badly signed, an expired or a malformed token with a clear code, and the old expiry stands", async () => {
    const cluster = await startCluster(1);
    const socket = await connect(cluster.urls[0]!, { sub: "ann", ttlSeconds: 4 });
    const cases: Array<[unknown, string, RegExp]> = [
      [{ token: await token({ sub: "mallory", ttlSeconds: 3600 }) }, "FORBIDDEN", /another user/],
      [{ token: await token({ sub: "ann", secret: "some-other-secret-0123456789", ttlSeconds: 3600 }) }, "UNAUTHORIZED", /bad signature/],
      [{ token: await token({ sub: "ann", ttlSeconds: -60 }) }, "UNAUTHORIZED", /expired/],
      [{ token: "not.a.jwt" }, "UNAUTHORIZED", /malformed/],
      [{ token: "" }, "INVALID_PAYLOAD", /token/],
      [{}, "INVALID_PAYLOAD", /token/],
      [{ token: 42 }, "INVALID_PAYLOAD", /token/],
    ];
    for (const [payload, code, message] of cases) {
      const ack = await rawRequest(socket, "auth:refresh", [payload]);
      expect(ack, JSON.stringify(payload).slice(0, 60)).to.deep.include({ ok: false });
      expect(!ack.ok && ack.error.code, JSON.stringify(payload).slice(0, 60)).to.equal(code);
      expect(!ack.ok && ack.error.message).to.match(message);
    }
    expect(socket.connected, "a refused refresh does not end the connection").to.equal(true);
    const expired = await nextEvent(socket, "auth:expired", () => true, 10_000);
    expect(Date.parse(expired.expiredAt)).to.be.at.most(Date.now());
    await eventually(() => !socket.connected, "the connection to end at the old expiry");
  });

  it("a narrower tickets claim revokes the rooms it no longer grants: ticket:revoked, no more updates, out of presence", async () => {
    const cluster = await startCluster(2);
    const ann = await connect(cluster.urls[0]!, { sub: "ann", tickets: ["A", "B"] });
    const revoked = collect(ann, "ticket:revoked");
    const updates = collect(ann, "ticket:update");
    await request(ann, "ticket:subscribe", { ticketId: "A" });
    await request(ann, "ticket:subscribe", { ticketId: "B" });
    const bob = new Watcher(await connect(cluster.urls[1]!, { sub: "bob" }), "A", "bob");
    await bob.subscribe();
    await allSee([bob], ["ann", "bob"], "both on A");

    const ack = await request(ann, "auth:refresh", { token: await token({ sub: "ann", tickets: ["B"] }) });
    expect(ack.ok).to.equal(true);
    await eventually(() => revoked.length === 1, "ticket:revoked");
    expect(revoked[0]).to.deep.equal({ ticketId: "A", reason: "access no longer granted by your token" });
    await allSee([bob], ["bob"], "ann revoked from A");

    await sql(cluster.databaseUrl, "SELECT realtime.publish_ticket_event('A', 'comment', '{}'), realtime.publish_ticket_event('B', 'comment', '{}')");
    await eventually(() => updates.some((u) => u.ticketId === "B"), "the update of B");
    await quietPeriod(300);
    expect(updates.map((u) => u.ticketId)).to.deep.equal(["B"]);

    const again = await request(ann, "ticket:subscribe", { ticketId: "A" });
    expect(!again.ok && again.error.code).to.equal("FORBIDDEN");
    const typing = await request(ann, "ticket:typing", { ticketId: "A", typing: true });
    expect(!typing.ok && typing.error.code).to.equal("NOT_SUBSCRIBED");
    expect(revoked).to.have.length(1);
  });
});
