import { expect } from "chai";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { connect, eventually, request } from "./support/client.js";
import { onCleanup } from "./support/cleanup.js";
import { sql } from "./support/db.js";
import { spawnGateway, waitExit, type GatewayProcess } from "./support/process.js";
import type { TicketUpdate } from "../src/protocol.js";

const CLI = fileURLToPath(new URL("../src/cli.ts", import.meta.url));

/** The start-up log's "change a ticket" hint names the embedded database. */
async function databaseUrlFrom(proc: GatewayProcess): Promise<string> {
  const find = () => proc.output.map((line) => /psql '([^']+)'/.exec(line)?.[1]).find(Boolean);
  await eventually(() => find() !== undefined, "the SQL hint in the start-up log");
  return find()!;
}

async function mint(dataDir: string, sub: string): Promise<string> {
  const run = await spawnGateway({ DATA_DIR: dataDir }, { entry: CLI, args: ["token", "--sub", sub, "--tickets", "*"], waitForStart: false });
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
