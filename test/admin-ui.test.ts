import { expect } from "chai";
import bcrypt from "bcryptjs";
import { connect, eventually } from "./support/client.js";
import { adminSocket, outcome } from "./support/admin.js";
import { clusterEnv, randomPrefix, startCluster } from "./support/cluster.js";
import { createRequire } from "node:module";
import { ADMIN_LOGIN_ATTEMPTS } from "../src/observability/admin-login.js";
import { onCleanup } from "./support/cleanup.js";
import { createTestDatabase } from "./support/db.js";
import { sample, scrape } from "./support/metrics.js";
import { spawnGateway } from "./support/process.js";

/** Count bcrypt compares, in our ESM copy of bcryptjs and in the CommonJS copy admin-ui requires. */
function countCompares(): { count: number } {
  const counter = { count: 0 };
  // the two may be one object (require of ESM): wrap each once
  for (const lib of new Set([bcrypt, createRequire(import.meta.url)("bcryptjs") as typeof bcrypt])) {
    const original = lib.compare;
    lib.compare = ((...args: Parameters<typeof original>) => {
      counter.count += 1;
      return original(...args);
    }) as typeof original;
    onCleanup("bcrypt spy", () => {
      lib.compare = original;
    });
  }
  return counter;
}

/** the connect_error of an admin login (message and data), or "connected" */
const login = (url: string, auth: Record<string, string>) =>
  new Promise<{ message: string; data?: { code: string; status: number; retryAfterMs?: number } }>((resolve) => {
    const socket = adminSocket(url, auth);
    socket.once("connect", () => resolve({ message: "connected" }));
    socket.once("connect_error", (error) => resolve({ message: error.message, data: (error as { data?: never }).data }));
  });

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

describe("admin UI login throttle", () => {
  it(`refuses attempts beyond ${ADMIN_LOGIN_ATTEMPTS} per IP without a bcrypt compare, the right password included`, async () => {
    const password = "correct horse battery";
    const cluster = await startCluster(1, { env: { ADMIN_UI_PASSWORD: password } });
    const url = cluster.urls[0]!;
    const compares = countCompares();
    for (let i = 0; i < ADMIN_LOGIN_ATTEMPTS; i++) expect((await login(url, { username: "admin", password: `guess${i}` })).message).to.equal("invalid credentials");
    expect(compares.count).to.equal(ADMIN_LOGIN_ATTEMPTS);
    for (const auth of [{ username: "admin", password: "guess" }, { username: "admin", password }]) {
      const refused = await login(url, auth);
      expect(refused.message).to.match(/^too many login attempts/);
      expect(refused.data).to.include({ code: "RATE_LIMITED", status: 429 });
      expect(refused.data!.retryAfterMs).to.be.within(1, 60_000);
    }
    expect(compares.count, "no compare once throttled").to.equal(ADMIN_LOGIN_ATTEMPTS);
    const metric = await cluster.gateways[0]!.metrics.adminLogins.get();
    expect(metric.values.find((v) => v.labels.result === "throttled")?.value).to.equal(2);
    // the gateway's own namespace is not affected by the admin throttle
    await connect(url, { sub: "agent" });
  });

  it("a successful login gives its point back, and failures are logged without the password", async () => {
    const password = "correct horse battery";
    const env = clusterEnv({ mode: "classic", databaseUrl: await createTestDatabase(), prefix: randomPrefix(), env: { ADMIN_UI_PASSWORD: password, LOG_LEVEL: "info" } });
    const gateway = await spawnGateway(env);
    const secretGuess = "hunter2-not-the-password";
    for (let i = 0; i < 3; i++) expect((await login(gateway.url, { username: "admin", password: secretGuess })).message).to.equal("invalid credentials");
    for (let i = 0; i < ADMIN_LOGIN_ATTEMPTS; i++) expect((await login(gateway.url, { username: "admin", password })).message).to.equal("connected");
    await eventually(() => gateway.output.filter((line) => line.includes("admin login failed")).length === 3, "three failure lines");
    const failures = gateway.output.filter((line) => line.includes("admin login failed")).map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(failures[0]).to.include({ ip: "127.0.0.1", username: "admin", level: 40 });
    expect(gateway.output.join("\n")).to.not.include(secretGuess);
    expect(gateway.output.join("\n")).to.not.include(password);
    const text = await scrape(gateway.metricsPort);
    expect(sample(text, "gateway_admin_logins_total", 'result="invalid"')).to.equal(3);
    expect(sample(text, "gateway_admin_logins_total", 'result="ok"')).to.equal(ADMIN_LOGIN_ATTEMPTS);
  });
});
