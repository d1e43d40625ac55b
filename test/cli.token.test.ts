/**
 * `realtime-gateway token`: mints an HS256 JWT with JWT_SECRET that the gateway accepts, with the
 * claims asked for; bad options exit non-zero with a message naming the option.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect } from "chai";
import { decodeJwt, decodeProtectedHeader } from "jose";
import { connect, rawRequest, request } from "./support/client.js";
import { onCleanup } from "./support/cleanup.js";
import { startCluster } from "./support/cluster.js";
import { TEST_JWT_SECRET } from "./support/env.js";
import { ROOT } from "./support/process.js";

const CLI = fileURLToPath(new URL("../src/cli.ts", import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: Record<string, string> = { JWT_SECRET: TEST_JWT_SECRET }): Promise<Run> {
  const child = spawn(process.execPath, ["--import", "tsx", CLI, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  onCleanup("cli process", () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
}

describe("realtime-gateway token", function () {
  this.timeout(60_000);

  it("prints a JWT with the requested claims that the gateway accepts", async () => {
    const before = Math.floor(Date.now() / 1000);
    const run = await cli(["token", "--sub", "x", "--tickets", "1,2", "--ttl", "5m", "--name", "Xavier"]);
    expect(run.code, run.stderr).to.equal(0);
    expect(run.stderr).to.equal("");
    const jwt = run.stdout.trim();
    expect(run.stdout).to.equal(`${jwt}\n`);
    expect(decodeProtectedHeader(jwt)).to.include({ alg: "HS256" });
    const claims = decodeJwt(jwt);
    expect(claims).to.include({ sub: "x", name: "Xavier", role: "agent" });
    expect(claims.tickets).to.deep.equal(["1", "2"]);
    expect(claims.exp! - claims.iat!).to.equal(300);
    expect(claims.iat).to.be.within(before - 1, before + 30);

    const { urls } = await startCluster(1);
    const socket = await connect(urls[0]!, { token: jwt });
    expect(await request(socket, "ticket:subscribe", { ticketId: "2" })).to.include({ ok: true, ticketId: "2" });
    const refused = await rawRequest(socket, "ticket:subscribe", [{ ticketId: "3" }]);
    expect(refused).to.deep.include({ ok: false }).and.have.nested.property("error.code", "FORBIDDEN");
  });

  it("defaults to every ticket, role agent and one hour, and carries JWT_ISSUER/JWT_AUDIENCE", async () => {
    const run = await cli(["token", "--sub", "y"], { JWT_SECRET: TEST_JWT_SECRET, JWT_ISSUER: "https://id.example.com", JWT_AUDIENCE: "helpdesk" });
    expect(run.code, run.stderr).to.equal(0);
    const claims = decodeJwt(run.stdout.trim());
    expect(claims).to.include({ sub: "y", role: "agent", iss: "https://id.example.com", aud: "helpdesk" });
    expect(claims.tickets).to.deep.equal(["*"]);
    expect(claims.exp! - claims.iat!).to.equal(3600);
    const { urls } = await startCluster(1, { env: { JWT_ISSUER: "https://id.example.com", JWT_AUDIENCE: "helpdesk" } });
    const socket = await connect(urls[0]!, { token: run.stdout.trim() });
    expect(socket.connected).to.equal(true);
  });

  for (const [what, args, message] of [
    ["a bad --ttl", ["token", "--sub", "x", "--ttl", "5 minutes"], /--ttl must be a duration.*5 minutes/],
    ["a zero --ttl", ["token", "--sub", "x", "--ttl", "0s"], /--ttl must be a duration/],
    ["a missing --sub", ["token", "--tickets", "1"], /--sub is required/],
    ["an unknown option", ["token", "--sub", "x", "--admin"], /--admin/],
  ] as Array<[string, string[], RegExp]>) {
    it(`exits non-zero with a clear message on ${what}`, async () => {
      const run = await cli(args);
      expect(run.code).to.be.a("number").and.not.equal(0);
      expect(run.stdout).to.equal("");
      expect(run.stderr).to.match(/^realtime-gateway: /).and.match(message);
    });
  }

  it("refuses to mint without a secret outside embedded mode", async () => {
    const run = await cli(["token", "--sub", "x"], { DATABASE_URL: "postgres://127.0.0.1/none" });
    expect(run.code).to.equal(78);
    expect(run.stdout).to.equal("");
    expect(run.stderr).to.match(/JWT_SECRET/);
  });
});
