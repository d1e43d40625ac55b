import { expect } from "chai";
import { collect, connect, quietPeriod, request } from "./support/client.js";
import { startCluster, type ClusterMode } from "./support/cluster.js";
import { Watcher, allSee } from "./support/presence.js";

for (const mode of ["classic", "sharded", "single", "redis-cluster"] as ClusterMode[]) {
  describe(`presence across instances (${mode})`, () => {
    const n = mode === "single" ? 1 : 2;

    it("three users on two instances see the exact viewer list after each join and leave; two tabs count once", async () => {
      const cluster = await startCluster(n, { mode });
      const url = (i: number) => cluster.urls[i % n]!;
      const ann = new Watcher(await connect(url(0), { sub: "ann", name: "Ann", role: "agent" }), "T1", "ann");
      const bob = new Watcher(await connect(url(1), { sub: "bob", name: "Bob", role: "agent" }), "T1", "bob");
      const cid = new Watcher(await connect(url(1), { sub: "cid", name: "Cid", role: "customer" }), "T1", "cid");

      await ann.subscribe();
      expect(ann.viewers).to.deep.equal([{ userId: "ann", name: "Ann", role: "agent" }]);
      await bob.subscribe();
      await allSee([ann, bob], ["ann", "bob"], "bob joined");
      await cid.subscribe();
      await allSee([ann, bob, cid], ["ann", "bob", "cid"], "cid joined");
      expect(bob.viewers).to.deep.equal([
        { userId: "ann", name: "Ann", role: "agent" },
        { userId: "bob", name: "Bob", role: "agent" },
        { userId: "cid", name: "Cid", role: "customer" },
      ]);

      // ann's second tab, on the other instance: still one ann, and nobody is told anything new
      const annTab2 = new Watcher(await connect(url(1), { sub: "ann", name: "Ann" }), "T1", "ann");
      const eventsBefore = bob.events.length;
      await annTab2.subscribe();
      expect(annTab2.users).to.deep.equal(["ann", "bob", "cid"]);
      ann.socket.disconnect();
      await quietPeriod(300);
      expect(bob.events.length, "a second tab opening or closing is not a change").to.equal(eventsBefore);
      expect(bob.users).to.deep.equal(["ann", "bob", "cid"]);

      expect(await request(bob.socket, "ticket:unsubscribe", { ticketId: "T1" })).to.deep.equal({ ok: true });
      await allSee([annTab2, cid], ["ann", "cid"], "bob unsubscribed");
      const bobSeen = bob.events.length;

      annTab2.socket.disconnect();
      await allSee([cid], ["cid"], "ann closed her last tab");
      await quietPeriod(200);
      expect(bob.events.length, "an unsubscribed socket hears no presence").to.equal(bobSeen);
    });

    it("viewers subscribing at once on both instances all end with the full list (a change only this instance's sockets can see is not published)", async () => {
      const cluster = await startCluster(n, { mode });
      const users = ["u1", "u2", "u3", "u4", "u5", "u6"];
      const watchers = await Promise.all(users.map(async (sub, i) => new Watcher(await connect(cluster.urls[i % n]!, { sub }), "T9", sub)));
      await Promise.all(watchers.map((w) => w.subscribe()));
      await allSee(watchers, users, "six concurrent subscribes");
      // the first viewer of a ticket on an instance alone: later subscribers elsewhere still see it
      const late = new Watcher(await connect(cluster.urls[n - 1]!, { sub: "u7" }), "T9", "u7");
      await late.subscribe();
      await allSee([...watchers, late], [...users, "u7"], "a late subscriber");
      watchers[0]!.socket.disconnect();
      await allSee([...watchers.slice(1), late], [...users.slice(1), "u7"], "u1 left");
    });

    it("keeps tickets apart and answers a repeated subscribe with the current viewers", async () => {
      const cluster = await startCluster(n, { mode });
      const a = await connect(cluster.urls[0]!, { sub: "ann" });
      const b = await connect(cluster.urls[n - 1]!, { sub: "bob" });
      const other = collect(a, "ticket:presence");
      await request(a, "ticket:subscribe", { ticketId: "A" });
      await request(b, "ticket:subscribe", { ticketId: "B" });
      const again = await request(a, "ticket:subscribe", { ticketId: "A" });
      expect(again.ok && again.viewers.map((v) => v.userId)).to.deep.equal(["ann"]);
      await quietPeriod(200);
      expect(other.every((p) => p.ticketId === "A")).to.equal(true);
    });
  });
}
