/** No ghosts: viewers held by an instance that dies abruptly leave every list within 30 s. */
import { expect } from "chai";
import { connect, eventually, request } from "./support/client.js";
import { clusterEnv, startCluster } from "./support/cluster.js";
import { spawnGateway, waitExit } from "./support/process.js";
import { Watcher, allSee } from "./support/presence.js";

const GHOST_DEADLINE_MS = 30_000;

describe("presence without ghosts", function () {
  this.timeout(90_000);

  it("removes the viewers of a SIGKILLed instance from the other instances' lists within 30 s", async () => {
    const cluster = await startCluster(2, { mode: "classic" });
    const doomed = await spawnGateway({
      ...clusterEnv({ mode: "classic", databaseUrl: cluster.databaseUrl, prefix: cluster.prefix }),
      INSTANCE_ID: `doomed-${cluster.prefix.slice(-4)}`,
      LOG_LEVEL: "info",
    });
    const stay = new Watcher(await connect(cluster.urls[0]!, { sub: "stay" }), "G", "stay");
    const other = new Watcher(await connect(cluster.urls[1]!, { sub: "other" }), "G", "other");
    const ghost = new Watcher(await connect(doomed.url, { sub: "ghost" }), "G", "ghost");
    // the same user on a surviving instance too: she must stay listed
    const both = new Watcher(await connect(doomed.url, { sub: "both" }), "G", "both");
    const bothElsewhere = new Watcher(await connect(cluster.urls[1]!, { sub: "both" }), "G", "both");
    for (const w of [stay, other, ghost, both, bothElsewhere]) await w.subscribe();
    await allSee([stay, other, ghost], ["both", "ghost", "other", "stay"], "everyone subscribed");

    doomed.kill("SIGKILL");
    const killedAt = Date.now();
    expect(await waitExit(doomed)).to.equal("SIGKILL");
    await eventually(
      () => [stay, other].every((w) => JSON.stringify(w.users) === JSON.stringify(["both", "other", "stay"])),
      "the dead instance's viewer to be removed",
      GHOST_DEADLINE_MS,
      100,
    );
    const tookMs = Date.now() - killedAt;
    expect(tookMs).to.be.below(GHOST_DEADLINE_MS);

    // and a newcomer is never shown the ghost
    const late = await connect(cluster.urls[0]!, { sub: "late" });
    const ack = await request(late, "ticket:subscribe", { ticketId: "G" });
    expect(ack.ok && ack.viewers.map((v) => v.userId)).to.deep.equal(["both", "late", "other", "stay"]);
  });
});
