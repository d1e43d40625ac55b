import { expect } from "chai";
import { connect, connectError, eventually, token, type TestSocket } from "./support/client.js";
import { clusterEnv, randomPrefix } from "./support/cluster.js";
import { createTestDatabase } from "./support/db.js";
import { redisClient, redisSlotCount } from "./support/limits.js";
import { spawnGateway, waitExit } from "./support/process.js";

describe("connection slots survive an instance crash", () => {
  it("SIGKILL an instance holding 5 of an IP's connections: within 60 s 5 new connections from that IP succeed", async function () {
    this.timeout(150_000);
    const databaseUrl = await createTestDatabase();
    const prefix = randomPrefix();
    const env = clusterEnv({ mode: "classic", databaseUrl, prefix, env: { MAX_CONNECTIONS_PER_IP: "10", LOG_LEVEL: "warn" } });
    const [doomed, survivor] = await Promise.all([spawnGateway({ ...env, INSTANCE_ID: "doomed" }), spawnGateway({ ...env, INSTANCE_ID: "survivor" })]);
    const jwt = await token();
    const onDoomed: TestSocket[] = [];
    for (let i = 0; i < 5; i++) onDoomed.push(await connect(doomed.url, { token: jwt }));
    for (let i = 0; i < 5; i++) await connect(survivor.url, { token: jwt });
    expect((await connectError(survivor.url, { token: jwt })).data).to.deep.include({ code: "TOO_MANY_CONNECTIONS" });
    const redis = redisClient();
    expect(await redisSlotCount(redis, prefix, "127.0.0.1")).to.equal(10);

    doomed.kill("SIGKILL");
    expect(await waitExit(doomed)).to.equal("SIGKILL");
    await eventually(() => onDoomed.every((s) => !s.connected), "the killed instance's clients to notice");
    const started = Date.now();
    // nobody released those 5 slots: they must expire on their own
    const fresh: TestSocket[] = [];
    await eventually(
      async () => {
        const socket = await connect(survivor.url, { token: jwt }).catch(() => undefined);
        if (socket) fresh.push(socket);
        return fresh.length === 5;
      },
      "5 new connections after the crash",
      60_000,
      500,
    );
    expect(Date.now() - started).to.be.below(60_000);
    // and the cap still holds cluster-wide: the dead instance's slots are gone, not doubled
    expect((await connectError(survivor.url, { token: jwt })).data).to.deep.include({ code: "TOO_MANY_CONNECTIONS" });
    expect(await redisSlotCount(redis, prefix, "127.0.0.1")).to.equal(10);
  });
});
