import { expect } from "chai";
import bcrypt from "bcryptjs";
import { connect, eventually } from "./support/client.js";
import { adminSocket, outcome } from "./support/admin.js";
import { startCluster } from "./support/cluster.js";



describe("admin UI (@socket.io/admin-ui)", () => {
  it("is off without ADMIN_UI_PASSWORD: the /admin namespace does not exist", async () => {
    const cluster = await startCluster(1, { mode: "single" });
    expect(await outcome(adminSocket(cluster.urls[0]!, { username: "admin", password: "" }))).to.equal("Invalid namespace");
  });

  it("refuses wrong credentials, and with the right ones reports every instance of the cluster", async () => {
    const password = "correct horse battery";
    const cluster = await startCluster(0);
    const a = await cluster.add({ ADMIN_UI_PASSWORD: password });
    // a bcrypt hash is accepted as is
    const b = await cluster.add({ ADMIN_UI_PASSWORD: bcrypt.hashSync(password, 4) });
    for (const url of cluster.urls) {
      expect(await outcome(adminSocket(url, { username: "admin", password: "wrong" }))).to.equal("invalid credentials");
      expect(await outcome(adminSocket(url, { username: "root", password }))).to.equal("invalid credentials");
      expect(await outcome(adminSocket(url, {}))).to.equal("invalid credentials");
    }
    // the gateway's own namespace still demands a JWT, whatever the admin credentials
    await connect(cluster.urls[1]!, { sub: "agent" });
    const admin = adminSocket(cluster.urls[0]!, { username: "admin", password });
    const servers = new Set<string>();
    admin.on("server_stats", (stats: { serverId: string }) => servers.add(stats.serverId));
    expect(await outcome(admin)).to.equal("connected");
    await eventually(() => servers.has(a.config.instanceId) && servers.has(b.config.instanceId), "stats from both instances", 15_000);
  });
});
