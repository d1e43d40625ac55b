import { connect as connectTcp } from "node:net";
import { expect } from "chai";
import { collect, connect, connectError, eventually, request, token } from "./support/client.js";
import { startCluster } from "./support/cluster.js";
import { sql, waitSequenced } from "./support/db.js";
import { range } from "./support/history.js";
import { sample, scrape } from "./support/metrics.js";
import { onCleanup } from "./support/cleanup.js";
import { lastId, openSse } from "./support/sse.js";

const publish = (url: string, ticketId: string, count: number) =>
  sql(url, "SELECT realtime.publish_ticket_event($1, 'sse', jsonb_build_object('i', i)) FROM generate_series(1, $2) AS i", [ticketId, count]);

const seqs = (updates: Array<{ seq: number | null }>) => updates.map((u) => u.seq);

describe("SSE /sse: one stream per client, on the same delivery pipeline as Socket.IO", () => {
  it("streams with the proxy-proof headers, a jittered retry, a ready cursor and heartbeat comments", async () => {
    const cluster = await startCluster(1, { env: { SSE_HEARTBEAT_INTERVAL: "200ms", CORS_ORIGINS: "https://helpdesk.example.com" } });
    const sse = await openSse(cluster.urls[0]!, "H1,H2", { token: await token(), headers: { origin: "https://helpdesk.example.com" } });
    expect(sse.headers["access-control-allow-origin"], "CORS_ORIGINS applies").to.equal("https://helpdesk.example.com");
    const foreign = await openSse(cluster.urls[0]!, "H1", { headers: { origin: "https://elsewhere.example.com" } });
    await foreign.ended;
    expect([foreign.status, foreign.headers["access-control-allow-origin"]]).to.deep.equal([401, undefined]);
    expect(sse.status).to.equal(200);
    expect(sse.headers["content-type"]).to.match(/^text\/event-stream/);
    expect(sse.headers["cache-control"]).to.match(/no-cache/);
    expect(sse.headers["x-accel-buffering"]).to.equal("no");
    expect(sse.headers.connection).to.equal("keep-alive");
    await eventually(() => sse.messages.some((m) => m.event === "ready"), "the ready event");
    const ready = sse.messages.find((m) => m.event === "ready")!;
    expect(JSON.parse(ready.data)).to.deep.equal({ tickets: { H1: 0, H2: 0 } });
    expect(ready.id).to.be.oneOf(["H1.0~H2.0", "H2.0~H1.0"]);
    expect(sse.retry).to.be.within(1000, 5000);
    await eventually(() => sse.comments.filter((c) => c === "heartbeat").length >= 2, "two heartbeat comments");
    expect(sample(await scrape(cluster.gateways[0]!.metricsPort), "gateway_sse_streams")).to.equal(1);
    sse.close();
    await eventually(async () => sample(await scrape(cluster.gateways[0]!.metricsPort), "gateway_sse_streams") === 0, "the stream to be counted out");
  });

  it("updates committed through two instances reach streams on both, in order, and match a Socket.IO client's", async () => {
    const cluster = await startCluster(2);
    const [a, b] = cluster.urls as [string, string];
    const onA = await openSse(a, "S1,S2", { token: await token() });
    const onB = await openSse(b, "S1", { token: await token(), tokenIn: "query" });
    const socket = await connect(b);
    await request(socket, "ticket:subscribe", { ticketId: "S1" });
    const socketUpdates = collect(socket, "ticket:update");
    await eventually(() => onA.messages.some((m) => m.event === "ready") && onB.messages.some((m) => m.event === "ready"), "both streams ready");
    await Promise.all([publish(cluster.databaseUrl, "S1", 40), publish(cluster.databaseUrl, "S2", 10), publish(cluster.databaseUrl, "S1", 10)]);
    await eventually(() => onA.updates("S1").length === 50 && onA.updates("S2").length === 10 && onB.updates().length === 50 && socketUpdates.length === 50, "every update");
    expect(seqs(onA.updates("S1"))).to.deep.equal(range(50));
    expect(seqs(onA.updates("S2"))).to.deep.equal(range(10));
    expect(onB.updates()).to.deep.equal(socketUpdates);
    expect(onA.updates("S1")).to.deep.equal(socketUpdates);
    // each id is the whole stream's cursor
    expect(lastId(onA)!.split("~").sort()).to.deep.equal(["S1.50", "S2.10"]);
  });

  it("a reconnect with Last-Event-ID resumes every ticket exactly after its cursor, on another instance", async () => {
    const cluster = await startCluster(2);
    const [a, b] = cluster.urls as [string, string];
    const first = await openSse(a, "R1,R2", { token: await token() });
    await eventually(() => first.messages.some((m) => m.event === "ready"), "ready");
    await publish(cluster.databaseUrl, "R1", 3);
    await publish(cluster.databaseUrl, "R2", 2);
    await eventually(() => first.updates().length === 5, "five live updates");
    const cursor = lastId(first)!;
    first.close();
    await publish(cluster.databaseUrl, "R1", 7);
    await publish(cluster.databaseUrl, "R2", 1);
    await waitSequenced(cluster.databaseUrl);

    const again = await openSse(b, "R1,R2", { token: await token(), lastEventId: cursor });
    await eventually(() => again.messages.some((m) => m.event === "ready"), "ready after the replay");
    await publish(cluster.databaseUrl, "R1", 1);
    await eventually(() => again.updates("R1").length === 8, "the missed and the next R1 updates");
    expect(seqs(again.updates("R1"))).to.deep.equal([4, 5, 6, 7, 8, 9, 10, 11]);
    expect(seqs(again.updates("R2"))).to.deep.equal([3]);
    expect(JSON.parse(again.messages.find((m) => m.event === "ready")!.data)).to.deep.equal({ tickets: { R1: 10, R2: 3 } });
  });

  it("past retention a resumed ticket gets ticket:reset, then live updates", async () => {
    const cluster = await startCluster(1, { env: { EVENT_RETENTION: "1s" } });
    await publish(cluster.databaseUrl, "P", 10);
    await waitSequenced(cluster.databaseUrl);
    await new Promise((resolve) => setTimeout(resolve, 1200)); // let the events age past a 1 s retention
    await cluster.gateways[0]!.delivery!.pruneNow();
    const sse = await openSse(cluster.urls[0]!, "P", { token: await token(), lastEventId: "P.4" });
    await eventually(() => sse.messages.some((m) => m.event === "ticket:reset"), "ticket:reset");
    const reset = sse.messages.find((m) => m.event === "ticket:reset")!;
    expect(JSON.parse(reset.data)).to.include({ ticketId: "P", seq: 10 });
    expect(reset.id).to.equal("P.10");
    await publish(cluster.databaseUrl, "P", 1);
    await eventually(() => sse.updates().length === 1, "the next update");
    expect(seqs(sse.updates())).to.deep.equal([11]);
  });

  it("refuses with 400, 401 and 403 and a JSON code before the stream starts", async () => {
    const cluster = await startCluster(1);
    const url = cluster.urls[0]!;
    const narrow = await token({ tickets: ["1"] });
    const cases: Array<[string, Parameters<typeof openSse>[2], number, string]> = [
      ["1", {}, 401, "UNAUTHORIZED"],
      ["1", { token: "not-a-jwt" }, 401, "UNAUTHORIZED"],
      ["1", { token: await token({ ttlSeconds: -10 }) }, 401, "UNAUTHORIZED"],
      ["1", { token: await token({ secret: "another-secret-0123456789abcdef" }), tokenIn: "query" }, 401, "UNAUTHORIZED"],
      ["1,2", { token: narrow }, 403, "FORBIDDEN"],
      ["", { token: narrow }, 400, "INVALID_PAYLOAD"],
      ["bad~id", { token: narrow }, 400, "INVALID_PAYLOAD"],
      [Array.from({ length: 90 }, (_, i) => `${"t".repeat(100)}${i}`).join(","), { token: narrow }, 400, "INVALID_PAYLOAD"],
      ["1", { token: narrow, lastEventId: "1.x" }, 400, "INVALID_PAYLOAD"],
      ["1", { token: narrow, lastEventId: "1.1~1.2" }, 400, "INVALID_PAYLOAD"],
      ["1", { token: narrow, lastEventId: "x".repeat(9000) }, 400, "INVALID_PAYLOAD"],
    ];
    for (const [tickets, options, status, code] of cases) {
      const sse = await openSse(url, tickets, options);
      await sse.ended;
      expect(sse.status, `${tickets} ${JSON.stringify(options).slice(0, 80)}`).to.equal(status);
      expect(sse.headers["content-type"]).to.match(/^application\/json/);
      expect(JSON.parse(sse.body)).to.include({ code });
    }
    const ok = await openSse(url, "1", { token: narrow });
    expect(ok.status).to.equal(200);
  });

  it("SSE streams count against MAX_CONNECTIONS_PER_IP, MAX_CONNECTIONS and the connection rate, with Socket.IO", async () => {
    const perIp = await startCluster(1, { env: { MAX_CONNECTIONS_PER_IP: "1" } });
    const held = await openSse(perIp.urls[0]!, "1", { token: await token() });
    expect(held.status).to.equal(200);
    const second = await openSse(perIp.urls[0]!, "1", { token: await token() });
    expect(second.status).to.equal(429);
    await second.ended;
    expect(JSON.parse(second.body)).to.include({ code: "TOO_MANY_CONNECTIONS" });
    expect((await connectError(perIp.urls[0]!, { token: await token() })).data).to.include({ code: "TOO_MANY_CONNECTIONS" });
    held.close();
    await eventually(async () => (await openSse(perIp.urls[0]!, "1", { token: await token() }).then((s) => (s.close(), s.status))) === 200, "the slot to be given back");

    const full = await startCluster(1, { env: { MAX_CONNECTIONS: "1" } });
    const only = await openSse(full.urls[0]!, "1", { token: await token() });
    expect(only.status).to.equal(200);
    const refused = await openSse(full.urls[0]!, "1", { token: await token() });
    await refused.ended;
    expect([refused.status, JSON.parse(refused.body).code]).to.deep.equal([503, "SERVER_FULL"]);
    expect((await connectError(full.urls[0]!, { token: await token() })).data).to.include({ code: "SERVER_FULL" });

    const rated = await startCluster(1, { env: { CONNECTION_RATE_PER_IP: "1/60s" } });
    expect((await openSse(rated.urls[0]!, "1", { token: await token() })).status).to.equal(200);
    const tooFast = await openSse(rated.urls[0]!, "1", { token: await token() });
    await tooFast.ended;
    expect([tooFast.status, JSON.parse(tooFast.body).code]).to.deep.equal([429, "RATE_LIMITED"]);
    expect(Number(tooFast.headers["retry-after"])).to.be.above(0);
  });

  it("a draining instance ends its streams and refuses new ones with 503 SHUTTING_DOWN", async () => {
    const cluster = await startCluster(1);
    const gateway = cluster.gateways[0]!;
    const sse = await openSse(cluster.urls[0]!, "D", { token: await token() });
    await eventually(() => sse.messages.some((m) => m.event === "ready"), "ready");
    const stopping = gateway.stop("test drain");
    const refused = await openSse(cluster.urls[0]!, "D", { token: await token() });
    await refused.ended;
    expect([refused.status, JSON.parse(refused.body).code]).to.deep.equal([503, "SHUTTING_DOWN"]);
    await sse.ended;
    await stopping;
  });

  it("realtime.evict ends the ticket (ticket:revoked) and the stream with its last ticket; only a newer token streams it again", async () => {
    const cluster = await startCluster(2);
    const old = await token({ sub: "ann" });
    const sse = await openSse(cluster.urls[0]!, "E1,E2", { token: old });
    await eventually(() => sse.messages.some((m) => m.event === "ready"), "ready");
    await sql(cluster.databaseUrl, "SELECT realtime.evict('E1', 'ann')");
    await eventually(() => sse.messages.some((m) => m.event === "ticket:revoked"), "ticket:revoked for E1");
    expect(JSON.parse(sse.messages.find((m) => m.event === "ticket:revoked")!.data)).to.include({ ticketId: "E1" });
    await publish(cluster.databaseUrl, "E1", 1);
    await publish(cluster.databaseUrl, "E2", 1);
    await eventually(() => sse.updates("E2").length === 1, "E2 still live");
    expect(sse.updates("E1")).to.deep.equal([]);
    expect(lastId(sse)).to.equal("E2.1");

    // the re-subscription rule: the old token may not stream E1 again, on any instance; a newer one may
    const refused = await openSse(cluster.urls[1]!, "E1", { token: old });
    await refused.ended;
    expect([refused.status, JSON.parse(refused.body).code]).to.deep.equal([403, "FORBIDDEN"]);
    const rows = await sql<{ evicted_at: Date }>(cluster.databaseUrl, "SELECT evicted_at FROM realtime.evictions WHERE ticket_id = 'E1'");
    const evictedAt = rows[0]!.evicted_at.getTime();
    await eventually(() => Math.floor(Date.now() / 1000) * 1000 > evictedAt, "the second after the eviction", 3000);
    const fresh = await openSse(cluster.urls[1]!, "E1", { token: await token({ sub: "ann" }) });
    expect(fresh.status).to.equal(200);
    fresh.close();

    await sql(cluster.databaseUrl, "SELECT realtime.evict('E2', 'ann')");
    await sse.ended;
    expect(sse.messages.filter((m) => m.event === "ticket:revoked").map((m) => JSON.parse(m.data).ticketId)).to.deep.equal(["E1", "E2"]);
  });

  it("a client that stops reading is closed once over 1 MiB stays unsent for a second (slow consumer); a reader on the same ticket is not", async () => {
    const cluster = await startCluster(1, { mode: "single" });
    const jwt = await token();
    // a raw TCP client that sends the request and never reads: the kernel buffers fill, then the gateway's
    const slow = connectTcp(cluster.gateways[0]!.port, "127.0.0.1");
    onCleanup("slow client", () => slow.destroy());
    slow.on("error", () => undefined);
    await new Promise((resolve) => slow.once("connect", resolve));
    slow.write(`GET /sse?tickets=big HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${jwt}\r\n\r\n`);
    slow.pause();
    const reader = await openSse(cluster.urls[0]!, "big", { token: jwt });
    await eventually(async () => sample(await scrape(cluster.gateways[0]!.metricsPort), "gateway_sse_streams") === 2, "both streams open");
    let published = 0;
    let done = false;
    // 256 KiB events until the gateway gives up on the stalled stream (loopback buffers absorb several MiB first)
    while (!done && published < 200) {
      await sql(cluster.databaseUrl, "SELECT realtime.publish_ticket_event('big', 'blob', jsonb_build_object('pad', repeat('x', 262144))) FROM generate_series(1, 10)");
      published += 10;
      await eventually(() => reader.updates().length === published, "the reader to keep up", 20_000);
      // a paused socket never reads the close: the gateway's count says when it gave up
      done = sample(await scrape(cluster.gateways[0]!.metricsPort), "gateway_sse_streams") === 1;
    }
    expect(done, "the stalled stream was closed").to.equal(true);
    expect(published, "closed before every event was written").to.be.below(200);
    await eventually(() => reader.updates().length === published, "the reader to get everything", 20_000);
    expect(seqs(reader.updates())).to.deep.equal(range(published));
    await eventually(async () => sample(await scrape(cluster.gateways[0]!.metricsPort), "gateway_sse_streams") === 1, "the slow stream to be counted out");
  });

  it("token expiry revokes every ticket and ends the stream", async () => {
    const cluster = await startCluster(1);
    const sse = await openSse(cluster.urls[0]!, "X1,X2", { token: await token({ ttlSeconds: 2 }) });
    await eventually(() => sse.messages.some((m) => m.event === "ready"), "ready");
    await sse.ended;
    const revoked = sse.messages.filter((m) => m.event === "ticket:revoked").map((m) => JSON.parse(m.data));
    expect(revoked.map((r) => r.ticketId).sort()).to.deep.equal(["X1", "X2"]);
    expect(revoked.every((r) => r.reason === "token expired")).to.equal(true);
  });
});
