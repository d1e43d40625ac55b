import { expect } from "chai";
import { createTicketClient, type SubscriptionHandlers, type TicketClient, type TicketClientOptions, type TicketUpdate } from "../client/src/index.js";
import { tokenExpiry } from "../client/src/token.js";
import { ticketRoom, type Viewer } from "../src/protocol.js";
import { onCleanup } from "./support/cleanup.js";
import { connect, eventually, quietPeriod, token } from "./support/client.js";
import { startCluster, type Cluster } from "./support/cluster.js";
import { sql, waitSequenced } from "./support/db.js";

function client(cluster: Cluster, options: Partial<TicketClientOptions> = {}, index = 0): TicketClient {
  const created = createTicketClient({
    url: cluster.urls[index]!,
    socketOptions: { transports: ["websocket"] },
    reconnectMinDelayMs: 100,
    reconnectMaxDelayMs: 1000,
    ...options,
  } as TicketClientOptions);
  onCleanup("ticket client", () => created.close());
  return created;
}

async function withToken(cluster: Cluster, options: Partial<TicketClientOptions> = {}, sub = "alice"): Promise<TicketClient> {
  return client(cluster, { token: await token({ sub, name: sub }), ...options });
}

/** Subscribe and record everything the handlers hear. */
function record(target: TicketClient, ticketId: string, subscribeOptions?: { sinceSeq?: number }) {
  const seen = {
    updates: [] as TicketUpdate[],
    resets: [] as number[],
    subscribed: [] as Array<{ seq: number; resumed: boolean; replayed: number }>,
    presence: [] as Viewer[][],
    typing: [] as Array<{ userId: string; typing: boolean }>,
    errors: [] as string[],
    revoked: [] as string[],
  };
  const handlers: SubscriptionHandlers = {
    onUpdate: (u) => seen.updates.push(u),
    onReset: ({ seq }) => seen.resets.push(seq),
    onSubscribed: ({ seq, resumed, replayed }) => seen.subscribed.push({ seq, resumed, replayed }),
    onPresence: (viewers) => seen.presence.push(viewers),
    onTyping: ({ userId, typing }) => seen.typing.push({ userId, typing }),
    onError: (error) => seen.errors.push(error.code),
    onRevoked: ({ reason }) => seen.revoked.push(reason),
  };
  const unsubscribe = target.subscribe(ticketId, handlers, subscribeOptions);
  return { ...seen, unsubscribe, seqs: () => seen.updates.map((u) => u.seq) };
}

/** Every `ticket:subscribe` the client sends. */
function outgoingSubscribes(target: TicketClient): Array<{ ticketId: string; sinceSeq?: number }> {
  const sent: Array<{ ticketId: string; sinceSeq?: number }> = [];
  target.socket.onAnyOutgoing((event: string, payload: { ticketId: string; sinceSeq?: number }) => {
    if (event === "ticket:subscribe") sent.push({ ...payload });
  });
  return sent;
}

async function publish(cluster: Cluster, ticketId: string, n = 1): Promise<void> {
  for (let i = 0; i < n; i++) await sql(cluster.databaseUrl, "SELECT realtime.publish_ticket_event($1, 'test.event', $2::jsonb)", [ticketId, JSON.stringify({ i })]);
  // the seq is assigned after commit: what a test asserts about heads holds once the leader numbered them
  await waitSequenced(cluster.databaseUrl);
}

const fake = (ticketId: string, seq: number): TicketUpdate => ({ ticketId, seq, id: `fake-${seq}`, type: "test.fake", data: { seq }, at: new Date().toISOString() });

function closeTransports(cluster: Cluster): void {
  for (const gateway of cluster.gateways) for (const socket of gateway.io.of("/").sockets.values()) socket.conn.close();
}

describe("ticket client", () => {
  describe("ordering", () => {
    it("delivers committed events once, in seq order, starting after the subscribe ack", async () => {
      const cluster = await startCluster(1, { mode: "single" });
      await publish(cluster, "t1", 2);
      const c = await withToken(cluster);
      const seen = record(c, "t1");
      await eventually(() => seen.subscribed.length === 1, "the subscribe ack");
      expect(seen.subscribed[0]).to.deep.equal({ seq: 2, resumed: false, replayed: 0 });
      await publish(cluster, "t1", 3);
      await eventually(() => seen.updates.length === 3, "three updates");
      await quietPeriod(200);
      expect(seen.seqs()).to.deep.equal([3, 4, 5]);
      expect(c.lastSeq("t1")).to.equal(5);
    });

    it("drops duplicates, live and replayed", async () => {
      const cluster = await startCluster(1, { mode: "single" });
      const c = await withToken(cluster);
      const seen = record(c, "t2");
      await eventually(() => seen.subscribed.length === 1, "the subscribe ack");
      await publish(cluster, "t2", 2);
      await eventually(() => seen.updates.length === 2, "two updates");
      const room = cluster.gateways[0]!.io.to(ticketRoom("t2"));
      for (const update of [...seen.updates, ...seen.updates]) room.emit("ticket:update", update);
      await publish(cluster, "t2", 1);
      await eventually(() => seen.updates.length >= 3, "the third update");
      await quietPeriod(300);
      expect(seen.seqs()).to.deep.equal([1, 2, 3]);
    });

    it("holds back out-of-order events until the gap fills", async () => {
      const cluster = await startCluster(1, { mode: "single" });
      // a long gap timeout: this test shows the hold, the next one the repair
      const c = await withToken(cluster, { gapTimeoutMs: 60_000 });
      const seen = record(c, "t3");
      await eventually(() => seen.subscribed.length === 1, "the subscribe ack");
      const room = cluster.gateways[0]!.io.to(ticketRoom("t3"));
      room.emit("ticket:update", fake("t3", 3));
      room.emit("ticket:update", fake("t3", 2));
      await quietPeriod(300);
      expect(seen.updates, "nothing before seq 1").to.be.empty;
      room.emit("ticket:update", fake("t3", 1));
      await eventually(() => seen.updates.length === 3, "all three updates");
      expect(seen.seqs()).to.deep.equal([1, 2, 3]);
    });

    it("buffers live events that arrive before the subscribe ack and delivers them after it", async () => {
      const cluster = await startCluster(1, { mode: "single" });
      const c = await withToken(cluster, { autoConnect: false });
      const seen = record(c, "t4");
      // emitted to the room the moment the socket joins, i.e. before the ack is written
      cluster.gateways[0]!.io.on("connection", (socket) => {
        const join = socket.join.bind(socket);
        socket.join = (room) => {
          const joined = join(room);
          if (room === ticketRoom("t4")) cluster.gateways[0]!.io.to(room).emit("ticket:update", fake("t4", 1));
          return joined;
        };
      });
      c.connect();
      await eventually(() => seen.updates.length === 1, "the early update");
      expect(seen.subscribed[0]).to.include({ seq: 0 });
      expect(seen.seqs()).to.deep.equal([1]);
    });

    it("delivers best-effort raw NOTIFY messages (seq null) as they are", async () => {
      const cluster = await startCluster(1, { mode: "single" });
      const c = await withToken(cluster);
      const seen = record(c, "42");
      await eventually(() => seen.subscribed.length === 1, "the subscribe ack");
      await sql(cluster.databaseUrl, `NOTIFY ticket_updates, '{"ticketId":"42","type":"legacy","data":{"x":1}}'`);
      await eventually(() => seen.updates.length === 1, "the raw update");
      expect(seen.updates[0]).to.include({ seq: null, type: "legacy" });
      expect(c.lastSeq("42")).to.equal(0);
    });
  });

  describe("recovery", () => {
    it("repairs a persistent gap by re-subscribing with sinceSeq", async () => {
      const cluster = await startCluster(1, { mode: "single" });
      const c = await withToken(cluster, { gapTimeoutMs: 300 });
      const sent = outgoingSubscribes(c);
      const seen = record(c, "t5");
      await eventually(() => seen.subscribed.length === 1, "the subscribe ack");
      await publish(cluster, "t5", 1);
      await eventually(() => seen.updates.length === 1, "seq 1");
      // the gateway never leaves a gap itself (it repairs from the outbox); something between it and
      // the client might: an update that skips ahead is forged into the room here
      cluster.gateways[0]!.io.to("ticket:t5").emit("ticket:update", { ticketId: "t5", seq: 3, id: "0", type: "test.forged", data: {}, at: new Date().toISOString() });
      await eventually(() => sent.length === 2, "a re-subscribe after the gap timeout");
      expect(sent[1]).to.deep.equal({ ticketId: "t5", sinceSeq: 1 });
      await publish(cluster, "t5", 2); // the real seq 2 fills the gap; the real seq 3 is a duplicate
      await eventually(() => seen.updates.length === 3, "the gap to be filled");
      expect(seen.seqs()).to.deep.equal([1, 2, 3]);
    });

    it("resumes every subscription from its last seq after a drain closes the transport", async () => {
      const cluster = await startCluster(1, { mode: "single" });
      const c = await withToken(cluster);
      const sent = outgoingSubscribes(c);
      const a = record(c, "ta");
      const b = record(c, "tb");
      await eventually(() => a.subscribed.length === 1 && b.subscribed.length === 1, "both acks");
      await publish(cluster, "ta", 2);
      await publish(cluster, "tb", 1);
      await eventually(() => a.updates.length === 2 && b.updates.length === 1, "the first updates");
      const id = c.socket.id;
      closeTransports(cluster);
      await eventually(() => c.status.state === "connected" && c.socket.id !== id, "the client to reconnect by itself");
      await eventually(() => a.subscribed.length === 2 && b.subscribed.length === 2, "both subscriptions to resume");
      expect(sent.slice(2)).to.have.deep.members([
        { ticketId: "ta", sinceSeq: 2 },
        { ticketId: "tb", sinceSeq: 1 },
      ]);
      await publish(cluster, "ta", 1);
      await publish(cluster, "tb", 1);
      await eventually(() => a.updates.length === 3 && b.updates.length === 2, "updates after the reconnect");
      expect(a.seqs()).to.deep.equal([1, 2, 3]);
      expect(b.seqs()).to.deep.equal([1, 2]);
    });

    it("replays the events committed while it was disconnected, once and in order", async () => {
      const cluster = await startCluster(1, { mode: "single" });
      // socket.io's own reconnection off: the test decides when the client comes back
      const c = await withToken(cluster, { socketOptions: { transports: ["websocket"], reconnection: false } });
      const seen = record(c, "t6");
      await eventually(() => seen.subscribed.length === 1, "the subscribe ack");
      await publish(cluster, "t6", 2);
      await eventually(() => seen.updates.length === 2, "the first updates");
      closeTransports(cluster);
      await eventually(() => c.status.state === "reconnecting", "the client to notice the disconnect");
      await publish(cluster, "t6", 3);
      c.socket.connect();
      await eventually(() => seen.updates.length === 5, "the replayed updates");
      await quietPeriod(200);
      expect(seen.seqs()).to.deep.equal([1, 2, 3, 4, 5]);
      expect(seen.subscribed[1]).to.deep.equal({ seq: 5, resumed: true, replayed: 3 });
      expect(seen.resets).to.be.empty;
    });

    it("calls onReset when the missed events are no longer retained, then carries on from the new head", async () => {
      const cluster = await startCluster(1, { mode: "single" });
      const c = await withToken(cluster, { socketOptions: { transports: ["websocket"], reconnection: false } });
      const seen = record(c, "t7");
      await eventually(() => seen.subscribed.length === 1, "the subscribe ack");
      await publish(cluster, "t7", 1);
      await eventually(() => seen.updates.length === 1, "the first update");
      closeTransports(cluster);
      await eventually(() => c.status.state === "reconnecting", "the client to notice the disconnect");
      await publish(cluster, "t7", 3);
      // retention pruned the events the client missed
      await sql(cluster.databaseUrl, "DELETE FROM realtime.ticket_events WHERE ticket_id = 't7' AND seq <= 3");
      c.socket.connect();
      await eventually(() => seen.resets.length === 1, "onReset");
      expect(seen.resets).to.deep.equal([4]);
      await publish(cluster, "t7", 1);
      await eventually(() => seen.updates.length === 2, "the update after the reset");
      expect(seen.seqs()).to.deep.equal([1, 5]);
    });

    it("resets a subscription started from a seq the server does not have", async () => {
      const cluster = await startCluster(1, { mode: "single" });
      await publish(cluster, "t8", 2);
      const c = await withToken(cluster);
      const seen = record(c, "t8", { sinceSeq: 50 });
      await eventually(() => seen.resets.length === 1, "onReset");
      expect(seen.resets).to.deep.equal([2]);
      expect(c.lastSeq("t8")).to.equal(2);
    });
  });

  describe("tokens and handshakes", () => {
    it("refreshes the token before it expires, on the same connection", async () => {
      const cluster = await startCluster(1, { mode: "single" });
      let issued = 0;
      const c = client(cluster, {
        getToken: () => {
          issued += 1;
          return token({ sub: "alice", ttlSeconds: 3 });
        },
      });
      const refreshed: string[] = [];
      const states: string[] = [];
      c.on("tokenRefreshed", ({ expiresAt }) => refreshed.push(expiresAt));
      c.on("status", ({ state }) => states.push(state));
      const seen = record(c, "t9");
      await eventually(() => seen.subscribed.length === 1, "the subscribe ack");
      const id = c.socket.id;
      // the first token lives at most 3 s: past that, only refreshes keep the socket alive
      await eventually(() => refreshed.length >= 2, "two refreshes", 15_000);
      await publish(cluster, "t9", 1);
      await eventually(() => seen.updates.length === 1, "an update after the first token expired");
      expect(c.socket.id).to.equal(id);
      expect(states).to.deep.equal(["connected"]);
      expect(issued).to.be.at.least(3);
      expect(new Date(refreshed[1]!).getTime()).to.be.above(new Date(refreshed[0]!).getTime());
    });

    it("fetches a new token and reconnects after the gateway refuses one", async () => {
      const cluster = await startCluster(1, { mode: "single" });
      const tokens = [await token({ sub: "alice", secret: "not-the-gateway-secret-0123" }), await token({ sub: "alice" })];
      const c = client(cluster, { getToken: () => tokens.shift() ?? token({ sub: "alice" }) });
      const statuses: Array<{ state: string; code?: string }> = [];
      c.on("status", ({ state, code }) => statuses.push({ state, code }));
      await eventually(() => c.status.state === "connected", "the client to connect with the second token");
      expect(statuses[0]).to.deep.include({ state: "reconnecting", code: "UNAUTHORIZED" });
    });

    it("gives up with a clear status when a fixed token is refused", async () => {
      const cluster = await startCluster(1, { mode: "single" });
      const c = client(cluster, { token: await token({ sub: "alice", secret: "not-the-gateway-secret-0123" }) });
      const errors: string[] = [];
      c.on("error", (error) => errors.push(`${error.code} ${error.status}`));
      const seen = record(c, "t10");
      await eventually(() => c.status.state === "refused", "the refused status");
      expect(c.status).to.deep.include({ code: "UNAUTHORIZED", message: "bad signature" });
      expect(errors).to.deep.equal(["UNAUTHORIZED 401"]);
      expect(seen.errors).to.deep.equal(["UNAUTHORIZED"]);
      await quietPeriod(500);
      expect(errors, "no retry").to.have.length(1);
    });

    it("retries a SERVER_FULL rejection with backoff until a slot frees", async () => {
      const cluster = await startCluster(1, { mode: "single", env: { MAX_CONNECTIONS: "1" } });
      const first = await connect(cluster.urls[0]!, { sub: "first" });
      const c = await withToken(cluster);
      const retries: Array<{ code?: string; retryInMs?: number }> = [];
      c.on("status", ({ state, code, retryInMs }) => {
        if (state === "reconnecting") retries.push({ code, retryInMs });
      });
      await eventually(() => retries.length >= 2, "two rejected attempts");
      for (const retry of retries) {
        expect(retry.code).to.equal("SERVER_FULL");
        // jittered: between half and all of the capped exponential delay (100 ms min, 1 s max here)
        expect(retry.retryInMs).to.be.within(50, 1000);
      }
      first.disconnect();
      await eventually(() => c.status.state === "connected", "the client to get the freed slot");
    });
  });

  describe("collaboration", () => {
    it("shows presence and relays typing between two clients", async () => {
      const cluster = await startCluster(1, { mode: "single" });
      const alice = await withToken(cluster, {}, "alice");
      const bob = await withToken(cluster, {}, "bob");
      const a = record(alice, "t11");
      await eventually(() => a.subscribed.length === 1, "alice's ack");
      const b = record(bob, "t11");
      const ids = (list: Viewer[][]) => list.at(-1)?.map((v) => v.userId) ?? [];
      await eventually(() => ids(a.presence).join() === "alice,bob" && ids(b.presence).join() === "alice,bob", "both to see both");
      expect(await bob.typing("t11", true)).to.equal(true);
      await eventually(() => a.typing.length === 1, "alice to see bob typing");
      expect(a.typing[0]).to.deep.equal({ userId: "bob", typing: true });
      b.unsubscribe();
      await eventually(() => ids(a.presence).join() === "alice", "bob to leave alice's viewer list");
      expect(await bob.typing("t11", false), "typing on a ticket it left").to.equal(false);
    });

    it("stops a forbidden subscription without retrying and reports why", async () => {
      const cluster = await startCluster(1, { mode: "single" });
      const c = client(cluster, { token: await token({ sub: "carol", tickets: ["1"] }) });
      const sent = outgoingSubscribes(c);
      const seen = record(c, "2");
      await eventually(() => seen.errors.length === 1, "the error");
      expect(seen.errors).to.deep.equal(["FORBIDDEN"]);
      await quietPeriod(400);
      expect(sent).to.have.length(1);
      expect(c.lastSeq("2")).to.equal(undefined);
    });

    it("rejects bad arguments with clear errors", async () => {
      expect(() => createTicketClient({} as TicketClientOptions)).to.throw(TypeError, /url/);
      expect(() => createTicketClient({ url: "http://127.0.0.1:1" })).to.throw(TypeError, /token/);
      const c = createTicketClient({ url: "http://127.0.0.1:1", token: "x", autoConnect: false });
      onCleanup("ticket client", () => c.close());
      expect(() => c.subscribe("", {})).to.throw(TypeError, /ticketId/);
      expect(() => c.subscribe("1", null as never)).to.throw(TypeError, /handlers/);
      expect(() => (c.on as (event: string, listener: () => void) => void)("nope", () => undefined)).to.throw(TypeError, /unknown event/);
      c.close();
      expect(() => c.subscribe("1", {})).to.throw(/closed/);
    });

    it("reads exp from a JWT without verifying it", async () => {
      const jwt = await token({ ttlSeconds: 120 });
      expect(tokenExpiry(jwt)! - Date.now()).to.be.within(110_000, 121_000);
      expect(tokenExpiry("not-a-jwt")).to.equal(undefined);
      expect(tokenExpiry("a.%%%.c")).to.equal(undefined);
    });
  });
});
