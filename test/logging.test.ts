import { expect } from "chai";
import { mintToken } from "../src/auth/jwt.js";
import { loadConfig } from "../src/config.js";
import { createGateway } from "../src/gateway.js";
import { connect, connectError, eventually, rawRequest } from "./support/client.js";
import { adminSocket, outcome } from "./support/admin.js";
import { clusterEnv, randomPrefix } from "./support/cluster.js";
import { createTestDatabase } from "./support/db.js";
import { spawnGateway, waitExit, type GatewayProcess } from "./support/process.js";
import { startRedisServer } from "./support/redis-server.js";

// every secret carries a marker that appears nowhere else, so a substring search cannot miss one
const JWT_SECRET = "jwt-secret-7f3a9c1e5b2d4a6f";
const PG_PASSWORD = "pg-password-4c8e2a6b0d1f";
const ADMIN_PASSWORD = "admin-password-9b1d3f5a7c2e";

interface LogLine {
  level: number;
  msg: string;
  instanceId?: string;
  [key: string]: unknown;
}

function records(proc: GatewayProcess): LogLine[] {
  return proc.output.filter((line) => line.startsWith("{")).map((line) => JSON.parse(line) as LogLine);
}



describe("logging: structured JSON lines, never a secret", () => {
  it("logs rejections, the election, dependency changes and the drain, and no secret, at LOG_LEVEL=debug", async () => {
    const redis = await startRedisServer();
    const database = new URL(await createTestDatabase());
    // the shared server trusts local connections, so any password is accepted: the point is the URL holds one
    database.username = "postgres";
    database.password = PG_PASSWORD;
    const env = clusterEnv({
      mode: "classic",
      databaseUrl: database.toString(),
      prefix: randomPrefix(),
      redisUrl: redis.url,
      env: { JWT_SECRET, ADMIN_UI_PASSWORD: ADMIN_PASSWORD, LOG_LEVEL: "debug", MIGRATE_ON_START: "true" },
    });
    const proc = await spawnGateway(env);
    await eventually(() => records(proc).some((r) => r.msg === "elected listener leader"), "the election line");

    const valid = await mintToken(JWT_SECRET, { sub: "agent-1", tickets: ["*"], ttlSeconds: 600 });
    const forged = await mintToken("another-secret-0123456789", { sub: "agent-1", tickets: ["*"], ttlSeconds: 600 });
    const expired = await mintToken(JWT_SECRET, { sub: "agent-1", tickets: ["*"], ttlSeconds: -60 });
    const garbage = "garbage-token-5e7a1c3b9d";
    const bearer = "bearer-token-2d4f6a8c0e";
    const refresh = "refresh-token-8a6c4e2f0b";
    for (const token of [forged, expired, garbage]) {
      expect((await connectError(proc.url, { token })).data).to.include({ code: "UNAUTHORIZED" });
    }
    expect((await connectError(proc.url, { token: null, extraHeaders: { authorization: `Bearer ${bearer}` } })).data).to.include({ code: "UNAUTHORIZED" });
    const socket = await connect(proc.url, { token: valid });
    expect(await rawRequest(socket, "auth:refresh", [{ token: refresh }])).to.deep.include({ ok: false });
    expect(await outcome(adminSocket(proc.url, { username: "admin", password: "wrong-password-3e5c7a9b1d" }))).to.equal("invalid credentials");
    expect(await outcome(adminSocket(proc.url, { username: "admin", password: ADMIN_PASSWORD }))).to.equal("connected");

    await redis.stop();
    await eventually(() => records(proc).some((r) => r.msg === "redis down"), "a redis down line", 15_000);
    await redis.start();
    await eventually(() => records(proc).filter((r) => r.msg === "redis up").length >= 2, "a second redis up line", 15_000);

    proc.kill("SIGTERM");
    expect(await waitExit(proc)).to.equal(0);

    const all = proc.output.join("\n");
    for (const secret of [JWT_SECRET, PG_PASSWORD, ADMIN_PASSWORD, valid, forged, expired, garbage, bearer, refresh, "wrong-password-3e5c7a9b1d"]) {
      expect(all, `a secret (${secret.slice(0, 12)}…) was logged`).not.to.include(secret);
    }
    // the token's signature alone is a secret too
    for (const token of [valid, forged, expired]) expect(all).not.to.include(token.split(".")[2]!);

    const logs = records(proc);
    const rejected = logs.filter((r) => r.msg === "connection rejected");
    expect(rejected).to.have.length(4);
    for (const line of rejected) {
      expect(line).to.include({ code: "UNAUTHORIZED", level: 30 });
      expect(line.instanceId).to.be.a("string").and.not.be.empty;
      expect(line).not.to.have.property("token");
    }
    expect(logs.filter((r) => r.msg === "elected listener leader")).to.have.length(1);
    expect(logs.some((r) => r.dependency === "postgres" && r.up === true)).to.equal(true);
    expect(logs.find((r) => r.msg === "redis down")).to.include({ dependency: "redis", level: 40 });
    expect(logs.find((r) => r.msg === "draining")).to.include({ reason: "SIGTERM", connections: 1 });
    expect(logs.find((r) => r.msg === "listener leadership lost")).to.include({ reason: "stopping" });
    expect(logs.some((r) => r.msg === "stopped")).to.equal(true);
    expect(logs.some((r) => r.level === 20), "debug lines at LOG_LEVEL=debug").to.equal(true);
  });

  it("respects LOG_LEVEL", async () => {
    const database = await createTestDatabase();
    for (const level of ["warn", "debug"]) {
      const config = loadConfig(clusterEnv({ mode: "single", databaseUrl: database, prefix: randomPrefix(), env: { LOG_LEVEL: level } }));
      const gateway = createGateway(config);
      expect(gateway.logger.level).to.equal(level);
      expect(gateway.logger.isLevelEnabled("info")).to.equal(level === "debug");
      await gateway.stop();
    }
  });
});
