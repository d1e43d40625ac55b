import { expect } from "chai";
import { ticketRoom } from "../src/protocol.js";
import { collect, connect, eventually, quietPeriod, request } from "./support/client.js";
import { startCluster, type ClusterMode } from "./support/cluster.js";

const update = (ticketId: string, seq: number) => ({ ticketId, seq, id: String(seq), type: "test", data: { seq }, at: new Date().toISOString() });

for (const mode of ["classic", "sharded", "single", "redis-cluster"] as ClusterMode[]) {
  describe(`rooms across instances (${mode})`, () => {
    const n = mode === "single" ? 1 : 3;

    it("delivers a room emit once to every subscriber on every instance, and to nobody else", async () => {
      const cluster = await startCluster(n, { mode });
      const subscribers = await Promise.all(cluster.urls.flatMap((url) => [connect(url, { sub: `a-${url}` }), connect(url, { sub: `b-${url}` })]));
      for (const socket of subscribers) {
        const ack = await request(socket, "ticket:subscribe", { ticketId: "42" });
        expect(ack).to.include({ ok: true, ticketId: "42" });
      }
      const outsider = await connect(cluster.urls[0]!, { sub: "outsider" });
      await request(outsider, "ticket:subscribe", { ticketId: "other" });
      const received = subscribers.map((socket) => collect(socket, "ticket:update"));
      const outsiderSeen = collect(outsider, "ticket:update");

      cluster.gateways[n - 1]!.io.to(ticketRoom("42")).emit("ticket:update", update("42", 1));
      await eventually(() => received.every((list) => list.length >= 1), "every subscriber to receive the update");
      await quietPeriod(200);
      for (const list of received) expect(list.map((u) => u.seq)).to.deep.equal([1]);
      expect(outsiderSeen).to.be.empty;
    });

    it("stops delivery after unsubscribe", async () => {
      const cluster = await startCluster(n, { mode });
      const stayer = await connect(cluster.urls[0]!, { sub: "stayer" });
      const leaver = await connect(cluster.urls[n - 1]!, { sub: "leaver" });
      await request(stayer, "ticket:subscribe", { ticketId: "7" });
      await request(leaver, "ticket:subscribe", { ticketId: "7" });
      const stayed = collect(stayer, "ticket:update");
      const left = collect(leaver, "ticket:update");
      expect(await request(leaver, "ticket:unsubscribe", { ticketId: "7" })).to.deep.equal({ ok: true });
      cluster.gateways[0]!.io.to(ticketRoom("7")).emit("ticket:update", update("7", 1));
      await eventually(() => stayed.length === 1, "the remaining subscriber to receive the update");
      await quietPeriod(200);
      expect(left).to.be.empty;
    });
  });
}
