import { expect } from "chai";
import { TYPING_STARTS_PER_WINDOW, TYPING_TTL_MS } from "../src/socket/typing.js";
import { collect, connect, eventually, nextEvent, quietPeriod, rawRequest, request, type TestSocket } from "./support/client.js";
import { startCluster, type ClusterMode } from "./support/cluster.js";

// the per-socket event limit is not what these tests are about
const env = { EVENT_RATE_PER_SOCKET: "1000/1s" };

async function subscribed(url: string, sub: string, ticketId = "T"): Promise<TestSocket> {
  const socket = await connect(url, { sub, name: sub.toUpperCase() });
  const ack = await request(socket, "ticket:subscribe", { ticketId });
  expect(ack.ok, `subscribe ${sub}`).to.equal(true);
  return socket;
}

// one Redis (classic adapter) and a Redis Cluster (sharded adapter): typing travels the same way
for (const mode of ["classic", "redis-cluster"] as ClusterMode[]) describe(`typing (${mode})`, () => {
  it("reaches the other subscribers on every instance, never the sender or the sender's other tabs", async () => {
    const cluster = await startCluster(2, { mode, env });
    const [u0, u1] = cluster.urls as [string, string];
    const ann = await subscribed(u0, "ann");
    const annTab = await subscribed(u1, "ann");
    const bob = await subscribed(u1, "bob");
    const cid = await subscribed(u0, "cid");
    const seen = { ann: collect(ann, "ticket:typing"), annTab: collect(annTab, "ticket:typing"), bob: collect(bob, "ticket:typing"), cid: collect(cid, "ticket:typing") };

    expect(await request(ann, "ticket:typing", { ticketId: "T", typing: true })).to.deep.equal({ ok: true, relayed: true });
    await eventually(() => seen.bob.length === 1 && seen.cid.length === 1, "bob and cid to hear ann typing");
    expect(seen.bob[0]).to.deep.equal({ ticketId: "T", userId: "ann", name: "ANN", typing: true });

    // a keystroke later: nothing new goes out
    expect(await request(ann, "ticket:typing", { ticketId: "T", typing: true })).to.deep.equal({ ok: true, relayed: false });
    expect(await request(ann, "ticket:typing", { ticketId: "T", typing: false })).to.deep.equal({ ok: true, relayed: true });
    await eventually(() => seen.bob.length === 2 && seen.cid.length === 2, "bob and cid to hear ann stop");
    expect(seen.cid[1]).to.deep.include({ userId: "ann", typing: false });
    expect(await request(ann, "ticket:typing", { ticketId: "T", typing: false })).to.deep.equal({ ok: true, relayed: false });

    await quietPeriod(200);
    expect(seen.ann, "no echo to the sender").to.be.empty;
    expect(seen.annTab, "no echo to the sender's other tab").to.be.empty;
    expect(seen.bob).to.have.length(2);
  });

  it("refuses typing from a socket that is not subscribed, and bad payloads", async () => {
    const cluster = await startCluster(2, { mode, env });
    const bob = await subscribed(cluster.urls[1]!, "bob");
    const heard = collect(bob, "ticket:typing");
    const eve = await connect(cluster.urls[0]!, { sub: "eve" });
    const stranger = await connect(cluster.urls[0]!, { sub: "stranger", tickets: ["other"] });

    const notSubscribed = await request(eve, "ticket:typing", { ticketId: "T", typing: true });
    expect(notSubscribed).to.deep.include({ ok: false });
    expect(!notSubscribed.ok && notSubscribed.error.code).to.equal("NOT_SUBSCRIBED");
    const forbidden = await request(stranger, "ticket:typing", { ticketId: "T", typing: true });
    expect(!forbidden.ok && forbidden.error.code).to.equal("NOT_SUBSCRIBED");

    await request(eve, "ticket:subscribe", { ticketId: "T" });
    for (const [payload, message] of [
      [{ ticketId: "T" }, /typing/],
      [{ ticketId: "T", typing: "yes" }, /typing must be a boolean/],
      [{ ticketId: "", typing: true }, /ticketId/],
      [{ ticketId: "bad id!", typing: true }, /ticketId/],
      ["T", /payload must be an object/],
    ] as const) {
      const ack = await rawRequest(eve, "ticket:typing", [payload]);
      expect(ack, JSON.stringify(payload)).to.deep.include({ ok: false });
      expect(!ack.ok && ack.error.code).to.equal("INVALID_PAYLOAD");
      expect(!ack.ok && ack.error.message).to.match(message);
    }
    const noAck = nextEvent(eve, "gateway:error");
    (eve as unknown as { emit(event: string, payload: unknown): void }).emit("ticket:typing", { ticketId: "T", typing: true });
    expect((await noAck).error.code).to.equal("INVALID_PAYLOAD");
    await quietPeriod(200);
    expect(heard).to.be.empty;
  });

  it("expires server-side when the client goes quiet, and stops at once on unsubscribe or disconnect", async function () {
    this.timeout(40_000);
    const cluster = await startCluster(2, { mode, env });
    const bob = await subscribed(cluster.urls[1]!, "bob");
    const heard = collect(bob, "ticket:typing");
    const quiet = await subscribed(cluster.urls[0]!, "quiet");
    const leaver = await subscribed(cluster.urls[0]!, "leaver");
    const vanisher = await subscribed(cluster.urls[0]!, "vanisher");

    await request(quiet, "ticket:typing", { ticketId: "T", typing: true });
    await eventually(() => heard.some((t) => t.userId === "quiet" && t.typing), "quiet's typing to arrive");
    const startedAt = Date.now();

    await request(leaver, "ticket:typing", { ticketId: "T", typing: true });
    await request(vanisher, "ticket:typing", { ticketId: "T", typing: true });
    await eventually(() => heard.filter((t) => t.typing).length === 3, "all three to be typing");
    await request(leaver, "ticket:unsubscribe", { ticketId: "T" });
    vanisher.disconnect();
    await eventually(
      () => ["leaver", "vanisher"].every((user) => heard.some((t) => t.userId === user && !t.typing)),
      "unsubscribe and disconnect to stop typing at once",
      3000,
    );

    await eventually(() => heard.some((t) => t.userId === "quiet" && !t.typing), "quiet's typing to expire", 12_000, 50);
    const shownMs = Date.now() - startedAt;
    expect(shownMs).to.be.at.least(TYPING_TTL_MS - 500);
    expect(shownMs, "a vanished typist is shown for at most 10 s").to.be.at.most(10_000);
    expect(heard.filter((t) => !t.typing).map((t) => t.userId).sort()).to.deep.equal(["leaver", "quiet", "vanisher"]);
  });

  it("caps how often a socket may start typing, and never leaves a stale indicator behind", async () => {
    const cluster = await startCluster(1, { mode, env });
    const bob = await subscribed(cluster.urls[0]!, "bob");
    const heard = collect(bob, "ticket:typing");
    const flapper = await subscribed(cluster.urls[0]!, "flapper");
    const acks = await Promise.all(
      Array.from({ length: 16 }, (_, i) => request(flapper, "ticket:typing", { ticketId: "T", typing: i % 2 === 0 })),
    );
    const limited = acks.filter((a) => !a.ok && a.error.code === "RATE_LIMITED");
    expect(limited.length, "starts over the cap are refused").to.be.at.least(8 - TYPING_STARTS_PER_WINDOW);
    expect(!limited[0]!.ok && limited[0]!.error.message).to.match(/retry in \d+ms/);
    await eventually(() => heard.length > 0 && heard[heard.length - 1]!.typing === false, "the last relay to be a stop");
    await quietPeriod(200);
    expect(heard.filter((t) => t.typing).length).to.be.at.most(TYPING_STARTS_PER_WINDOW);
    expect(heard[heard.length - 1]!.typing).to.equal(false);
  });
});
