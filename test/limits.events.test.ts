import { expect } from "chai";
import { collect, connect, eventually, nextEvent, quietPeriod, rawRequest, request } from "./support/client.js";
import { startCluster } from "./support/cluster.js";
import { clientEvents } from "./support/limits.js";

describe("per-socket limits", () => {
  it("EVENT_RATE_PER_SOCKET: the ack carries RATE_LIMITED; other sockets on the instance are unaffected", async () => {
    const cluster = await startCluster(1, { env: { EVENT_RATE_PER_SOCKET: "5/30s" } });
    const [url] = cluster.urls as [string];
    const noisy = await connect(url, { sub: "noisy" });
    const calm = await connect(url, { sub: "calm" });
    for (let i = 0; i < 5; i++) expect(await request(noisy, "ticket:subscribe", { ticketId: `t${i}` })).to.include({ ok: true });
    const limited = await request(noisy, "ticket:subscribe", { ticketId: "t9" });
    expect(limited).to.deep.include({ ok: false });
    expect(limited.ok === false && limited.error.code).to.equal("RATE_LIMITED");
    expect(limited.ok === false && limited.error.message).to.match(/retry in \d+ms/);
    // unknown events spend the same budget: they cannot be used to flood for free
    expect((await rawRequest(noisy, "no:such:event", [{}])) as { error?: { code: string } }).to.have.nested.property("error.code", "RATE_LIMITED");
    expect(await request(calm, "ticket:subscribe", { ticketId: "t1" })).to.include({ ok: true, ticketId: "t1" });
    expect(noisy.connected).to.equal(true);
    expect(await clientEvents(cluster.gateways[0]!, "RATE_LIMITED")).to.equal(2);
  });

  it("a socket that keeps flooding after the warnings is disconnected with a stated reason", async () => {
    const cluster = await startCluster(1, { env: { EVENT_RATE_PER_SOCKET: "2/60s" } });
    const [url] = cluster.urls as [string];
    const flooder = await connect(url, { sub: "flooder" });
    const bystander = await connect(url, { sub: "bystander" });
    const errors = collect(flooder, "gateway:error");
    const disconnected = new Promise<string>((resolve) => flooder.once("disconnect", resolve));
    const acks: Array<Promise<unknown>> = [];
    // 2 allowed, then 50 rate-limited replies in a row
    for (let i = 0; i < 52; i++) acks.push(rawRequest(flooder, "ticket:typing", [{ ticketId: "1", typing: true }], 10_000).catch((e: Error) => e));
    expect(await disconnected).to.equal("io server disconnect");
    const reason = errors.find((e) => /disconnected/.test(e.error.message));
    expect(reason, JSON.stringify(errors)).to.exist;
    expect(reason!.error.code).to.equal("RATE_LIMITED");
    expect(reason!.error.message).to.match(/kept sending events after 50 rate-limit replies/);
    const settled = await Promise.all(acks);
    expect(settled.filter((a) => (a as { error?: { code: string } }).error?.code === "RATE_LIMITED")).to.have.length(50);
    expect(bystander.connected).to.equal(true);
    expect(await request(bystander, "ticket:subscribe", { ticketId: "1" })).to.include({ ok: true });
  });

  it("a well-behaved socket below the rate is never disconnected", async () => {
    const cluster = await startCluster(1, { env: { EVENT_RATE_PER_SOCKET: "50/1s" } });
    const socket = await connect(cluster.urls[0]!);
    expect(await request(socket, "ticket:subscribe", { ticketId: "1" })).to.include({ ok: true });
    for (let i = 0; i < 30; i++) expect(await request(socket, "ticket:subscribe", { ticketId: "1", sinceSeq: 0 })).to.include({ ok: true });
    await quietPeriod(100);
    expect(socket.connected).to.equal(true);
  });

  it("MAX_SUBSCRIPTIONS_PER_SOCKET → TOO_MANY_SUBSCRIPTIONS, per socket", async () => {
    const cluster = await startCluster(1, { env: { MAX_SUBSCRIPTIONS_PER_SOCKET: "2" } });
    const [url] = cluster.urls as [string];
    const socket = await connect(url, { sub: "many" });
    const other = await connect(url, { sub: "other" });
    expect(await request(socket, "ticket:subscribe", { ticketId: "a" })).to.include({ ok: true });
    expect(await request(socket, "ticket:subscribe", { ticketId: "b" })).to.include({ ok: true });
    const refused = await request(socket, "ticket:subscribe", { ticketId: "c" });
    expect(refused).to.have.nested.property("error.code", "TOO_MANY_SUBSCRIPTIONS");
    expect(await clientEvents(cluster.gateways[0]!, "TOO_MANY_SUBSCRIPTIONS")).to.equal(1);
    // re-subscribing (resume) to a held ticket is not a new subscription
    expect(await request(socket, "ticket:subscribe", { ticketId: "a", sinceSeq: 0 })).to.include({ ok: true });
    expect(await request(socket, "ticket:unsubscribe", { ticketId: "b" })).to.deep.equal({ ok: true });
    expect(await request(socket, "ticket:subscribe", { ticketId: "c" })).to.include({ ok: true });
    for (const t of ["a", "b", "c"]) expect(await request(other, "ticket:subscribe", { ticketId: t }).then((r) => r.ok)).to.equal(t !== "c");
  });

  it("a packet over MAX_PAYLOAD_BYTES closes only its sender's connection and frees its slot", async () => {
    const cluster = await startCluster(1, { env: { MAX_PAYLOAD_BYTES: "1024", MAX_CONNECTIONS_PER_IP: "2" } });
    const [url] = cluster.urls as [string];
    const big = await connect(url, { sub: "big" });
    const small = await connect(url, { sub: "small" });
    await request(small, "ticket:subscribe", { ticketId: "1" });
    const gone = new Promise<string>((resolve) => big.once("disconnect", resolve));
    big.emit("ticket:subscribe", { ticketId: "x".repeat(4096) }, () => undefined);
    expect(await gone).to.match(/transport (close|error)/);
    // the other socket keeps working and keeps receiving room traffic
    expect(await request(small, "ticket:typing", { ticketId: "1", typing: true })).to.include({ ok: true });
    const update = nextEvent(small, "ticket:update");
    cluster.gateways[0]!.io.to("ticket:1").emit("ticket:update", { ticketId: "1", seq: 1, id: "1", type: "t", data: {}, at: new Date().toISOString() });
    expect(await update).to.include({ ticketId: "1", seq: 1 });
    // the refused connection released its per-IP slot (cap 2: small + a new one)
    await eventually(async () => (await connect(url).then(() => true, () => false)), "the big sender's slot to be released");
    // just under the limit is fine
    expect(await request(small, "auth:refresh", { token: "y".repeat(700) })).to.have.nested.property("error.code");
    expect(small.connected).to.equal(true);
  });

  it("long-polling: a body over MAX_PAYLOAD_BYTES is refused with HTTP 413", async () => {
    const cluster = await startCluster(1, { env: { MAX_PAYLOAD_BYTES: "1024" } });
    const base = `${cluster.urls[0]}/socket.io/?EIO=4&transport=polling`;
    const open = await (await fetch(base)).text();
    const sid = (JSON.parse(open.slice(1)) as { sid: string }).sid;
    const response = await fetch(`${base}&sid=${sid}`, { method: "POST", body: "4" + "x".repeat(4096), headers: { "content-type": "text/plain" } });
    expect(response.status).to.equal(413);
    await response.arrayBuffer();
  });
});
