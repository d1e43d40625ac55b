import { expect } from "chai";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, chown, mkdir, mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { dataStandIn } from "../src/db/embedded-access.js";
import { connect, eventually, request } from "./support/client.js";
import { onCleanup } from "./support/cleanup.js";
import { sql } from "./support/db.js";
import { ROOT, spawnGateway, waitExit, type GatewayProcess } from "./support/process.js";
import type { TicketUpdate } from "../src/protocol.js";

const CLI = fileURLToPath(new URL("../src/cli.ts", import.meta.url));

/** The start-up log's "change a ticket" hint names the embedded database. */
async function databaseUrlFrom(proc: GatewayProcess): Promise<string> {
  const find = () => proc.output.map((line) => /psql '([^']+)'/.exec(line)?.[1]).find(Boolean);
  await eventually(() => find() !== undefined, "the SQL hint in the start-up log");
  return find()!;
}

async function mint(dataDir: string, sub: string, entry = CLI, cwd = ROOT): Promise<string> {
  const run = await spawnGateway({ DATA_DIR: dataDir }, { entry, cwd, args: ["token", "--sub", sub, "--tickets", "*"], waitForStart: false });
  expect(await waitExit(run)).to.equal(0);
  return run.output.find((line) => /^ey[\w-]+\.[\w-]+\.[\w-]+$/.test(line))!;
}

describe("embedded mode (npm start with no configuration)", () => {
  it("starts PostgreSQL under DATA_DIR, seeds watched demo tickets, delivers a row change, stops on Ctrl-C, and keeps data across restarts", async function () {
    this.timeout(120_000);
    const dataDir = await mkdtemp(join(tmpdir(), "rg-embedded-"));
    // PostgreSQL runs as an unprivileged user when the tests run as root: it must reach DATA_DIR
    await chmod(dataDir, 0o755);
    onCleanup("data dir", () => rm(dataDir, { recursive: true, force: true }));
    const env = { DATA_DIR: dataDir, PORT: "0", METRICS_PORT: "0", HOST: "127.0.0.1" };

    const gateway = await spawnGateway(env, { entry: CLI, args: ["serve"], timeoutMs: 90_000 });
    expect(gateway.output.join("\n")).to.contain("single node");
    const databaseUrl = await databaseUrlFrom(gateway);
    const socket = await connect(gateway.url, { token: await mint(dataDir, "alice") });
    const ack = await request(socket, "ticket:subscribe", { ticketId: "1" });
    expect(ack).to.include({ ok: true, ticketId: "1" });
    const seen: TicketUpdate[] = [];
    socket.on("ticket:update", (u) => seen.push(u));
    await sql(databaseUrl, "UPDATE tickets SET status = 'pending' WHERE id = '1'");
    await eventually(() => seen.length === 1, "the watched-table update");
    expect(seen[0]).to.deep.include({ ticketId: "1", type: "tickets.update" });
    expect(seen[0]!.data).to.include({ id: "1", status: "pending" });
    const seqBefore = seen[0]!.seq!;
    socket.disconnect();

    gateway.kill("SIGINT");
    expect(await waitExit(gateway, 30_000)).to.equal(0);
    // PostgreSQL is gone with it
    const stillUp = await sql(databaseUrl, "SELECT 1").then(() => true, () => false);
    expect(stillUp).to.equal(false);

    const again = await spawnGateway(env, { entry: CLI, args: ["serve"], timeoutMs: 90_000 });
    const rows = await sql<{ status: string }>(await databaseUrlFrom(again), "SELECT status FROM tickets WHERE id = '1'");
    expect(rows).to.deep.equal([{ status: "pending" }]);
    const resumed = await connect(again.url, { token: await mint(dataDir, "bob") });
    const replay = await request(resumed, "ticket:subscribe", { ticketId: "1", sinceSeq: seqBefore - 1 });
    if (!replay.ok) throw new Error(replay.error.message);
    expect(replay.recovered).to.equal(true);
    expect(replay.missed.map((u) => u.seq)).to.deep.equal([seqBefore]);
    again.kill("SIGTERM");
    expect(await waitExit(again, 30_000)).to.equal(0);
  });
});

/** The JSON log records of a child process. */
function records(proc: GatewayProcess): Array<Record<string, unknown>> {
  return proc.output.filter((line) => line.startsWith("{")).map((line) => JSON.parse(line) as Record<string, unknown>);
}

/**
 * A fresh clone under a private (mode 700) directory, as /root/... or `mktemp -d` give: hard links of
 * the repository's files (same file system: under .tmp/ in the repository), so paths, not contents, differ.
 */
async function privateClone(): Promise<string> {
  await mkdir(join(ROOT, ".tmp"), { recursive: true });
  const dir = await mkdtemp(join(ROOT, ".tmp", "private-"));
  onCleanup("private clone", () => rm(dir, { recursive: true, force: true }));
  expect((await stat(dir)).mode & 0o777).to.equal(0o700);
  const parts = ["package.json", "tsconfig.json", "src", "node_modules", "client"].filter((part) => existsSync(join(ROOT, part)));
  // hard links where the file system allows them (fast), a real copy otherwise
  let copy = spawnSync("cp", ["-al", ...parts, dir], { cwd: ROOT, encoding: "utf8" });
  if (copy.status !== 0) {
    // never write through a hard link made before the failure: start from an empty directory
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { mode: 0o700 });
    copy = spawnSync("cp", ["-a", ...parts, dir], { cwd: ROOT, encoding: "utf8" });
  }
  if (copy.status !== 0) throw new Error(`copying the repository failed: ${copy.stderr}`);
  return dir;
}

describe("embedded mode in a private directory", () => {
  const root = process.getuid?.() === 0;

  it("starts from a clone in a mode-700 directory (as root: binaries and data where the postgres user reaches them, said in the log) and keeps its data across restarts", async function () {
    this.timeout(180_000);
    const clone = await privateClone();
    const cli = join(clone, "src", "cli.ts");
    const env = { PORT: "0", METRICS_PORT: "0", HOST: "127.0.0.1" };
    const dataDir = join(clone, ".data");
    onCleanup("data stand-in", () => rm(dataStandIn(dataDir, "/var/tmp"), { recursive: true, force: true }));

    const gateway = await spawnGateway(env, { entry: cli, cwd: clone, args: ["serve"], timeoutMs: 120_000 });
    const logged = records(gateway);
    const running = logged.find((r) => r.msg === "embedded PostgreSQL running");
    expect(running, "the embedded PostgreSQL start line").to.not.equal(undefined);
    if (root) {
      // postgres cannot enter the clone: a copy of the binaries, and the data outside it
      expect(logged.some((r) => String(r.msg).includes("embedded PostgreSQL runs from a copy in"))).to.equal(true);
      const moved = logged.find((r) => String(r.msg).includes("embedded PostgreSQL keeps its data in"));
      expect(moved?.databaseDir).to.be.a("string");
      expect(String(running!.databaseDir)).to.equal(moved!.databaseDir);
      expect(String(running!.databaseDir).startsWith(clone)).to.equal(false);
    } else {
      expect(String(running!.databaseDir)).to.equal(join(dataDir, "postgres"));
    }
    const databaseUrl = await databaseUrlFrom(gateway);
    const socket = await connect(gateway.url, { token: await mint(dataDir, "alice", cli, clone) });
    expect(await request(socket, "ticket:subscribe", { ticketId: "2" })).to.include({ ok: true, ticketId: "2" });
    const seen: TicketUpdate[] = [];
    socket.on("ticket:update", (u) => seen.push(u));
    await sql(databaseUrl, "UPDATE tickets SET status = 'solved' WHERE id = '2'");
    await eventually(() => seen.length === 1, "the watched-table update");
    expect(seen[0]!.data).to.include({ id: "2", status: "solved" });
    socket.disconnect();
    gateway.kill("SIGTERM");
    expect(await waitExit(gateway, 30_000)).to.equal(0);

    // the second start reuses the copy and the data
    const again = await spawnGateway(env, { entry: cli, cwd: clone, args: ["serve"], timeoutMs: 120_000 });
    expect(records(again).some((r) => r.msg === "initialising embedded PostgreSQL")).to.equal(false);
    const rows = await sql<{ status: string }>(await databaseUrlFrom(again), "SELECT status FROM tickets WHERE id = '2'");
    expect(rows).to.deep.equal([{ status: "solved" }]);
    again.kill("SIGTERM");
    expect(await waitExit(again, 30_000)).to.equal(0);

    // the copy outlives the clone that made it: another clone, made after this one is gone, starts too
    await rm(clone, { recursive: true, force: true });
    const other = await privateClone();
    const otherData = join(other, ".data");
    onCleanup("data stand-in", () => rm(dataStandIn(otherData, "/var/tmp"), { recursive: true, force: true }));
    const third = await spawnGateway(env, { entry: join(other, "src", "cli.ts"), cwd: other, args: ["serve"], timeoutMs: 120_000 });
    expect(await sql(await databaseUrlFrom(third), "SELECT id FROM tickets ORDER BY id")).to.have.length(3);
    third.kill("SIGTERM");
    expect(await waitExit(third, 30_000)).to.equal(0);
  });

  it("exits with one line naming the directory and the fix when the place it would use belongs to someone else", async function () {
    this.timeout(120_000);
    const dataDir = await mkdtemp(join(tmpdir(), "rg-private-data-"));
    onCleanup("data dir", () => rm(dataDir, { recursive: true, force: true }));
    const standIn = dataStandIn(dataDir, "/var/tmp");
    onCleanup("data stand-in", () => rm(standIn, { recursive: true, force: true }));
    const env = { DATA_DIR: dataDir, PORT: "0", METRICS_PORT: "0", HOST: "127.0.0.1" };
    if (!root) {
      // PostgreSQL runs as this user, who owns DATA_DIR: nothing to arrange
      const gateway = await spawnGateway(env, { entry: CLI, args: ["serve"], timeoutMs: 90_000 });
      gateway.kill("SIGTERM");
      expect(await waitExit(gateway, 30_000)).to.equal(0);
      return;
    }
    // another user's directory where the stand-in would go: never use it, never chown it
    await mkdir(standIn, { mode: 0o755 });
    const postgres = spawnSync("id", ["-u", "postgres"], { encoding: "utf8" });
    const uid = postgres.status === 0 ? Number(postgres.stdout.trim()) : 65534;
    await chown(standIn, uid, uid);
    const gateway = await spawnGateway(env, { entry: CLI, args: ["serve"], waitForStart: false });
    expect(await waitExit(gateway, 60_000)).to.equal(1);
    const fatal = records(gateway).filter((r) => r.level === 60);
    expect(fatal).to.have.length(1);
    expect(String(fatal[0]!.err)).to.contain(standIn).and.to.contain("rm -rf");
    expect(gateway.output.join("\n")).to.not.match(/EACCES|Unhandled|at .*\.ts:\d+/);
    expect((await stat(standIn)).uid).to.equal(uid);
    expect(existsSync(join(standIn, "postgres"))).to.equal(false);
  });
});
