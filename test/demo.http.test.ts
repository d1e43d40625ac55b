import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { seedDemo } from "../src/db/embedded.js";
import { writeDemoAssets } from "../src/demo/bundle.js";
import { onCleanup } from "./support/cleanup.js";
import { connect, nextEvent, request, token } from "./support/client.js";
import { startCluster } from "./support/cluster.js";
import { sql, waitSequenced } from "./support/db.js";

async function call(url: string, init: { method?: string; body?: unknown; raw?: string; token?: string } = {}) {
  const headers: Record<string, string> = {};
  if (init.body !== undefined || init.raw !== undefined) headers["content-type"] = "application/json";
  if (init.token) headers.authorization = `Bearer ${init.token}`;
  const res = await fetch(url, { method: init.method ?? "GET", headers, body: init.raw ?? (init.body === undefined ? undefined : JSON.stringify(init.body)) });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text, headers: res.headers };
}

describe("demo HTTP API", () => {
  it("serves the page, the client bundle, tokens and a snapshot with the ticket's seq", async () => {
    const cluster = await startCluster(1, { mode: "single", env: { DEMO_UI: "true" } });
    await seedDemo(cluster.databaseUrl);
    await waitSequenced(cluster.databaseUrl);
    const base = cluster.urls[0]!;
    const page = await call(`${base}/`);
    expect(page.status).to.equal(200);
    expect(page.text).to.include("<title>Helpdesk live");
    expect(page.headers.get("content-security-policy")).to.include("default-src 'self'");
    const bundle = await call(`${base}/client.js`);
    expect(bundle.status).to.equal(200);
    expect(bundle.headers.get("content-type")).to.match(/javascript/);
    expect(bundle.text).to.match(/export\s*\{[^}]*createTicketClient/);

    const minted = await call(`${base}/demo/token`, { method: "POST", body: { agent: "bob" } });
    expect(minted.status).to.equal(200);
    expect(minted.json.agent).to.deep.equal({ id: "bob", name: "Bob Chen" });
    // the token works on the gateway
    const socket = await connect(base, { token: minted.json.token });
    expect(await request(socket, "ticket:subscribe", { ticketId: "1" })).to.deep.include({ ok: true, seq: 1 });

    const snapshot = await call(`${base}/demo/tickets/1`);
    expect(snapshot.json).to.deep.include({ seq: 1, comments: [] });
    expect(snapshot.json.ticket).to.include({ id: "1", status: "open" });
    const list = await call(`${base}/demo/tickets`);
    expect(list.json.tickets.map((t: { id: string }) => t.id)).to.deep.equal(["1", "2", "3"]);
  });

  it("writes status changes and comments to PostgreSQL, which stream back to subscribers", async () => {
    const cluster = await startCluster(1, { mode: "single", env: { DEMO_UI: "true" } });
    await seedDemo(cluster.databaseUrl);
    const base = cluster.urls[0]!;
    const { json } = await call(`${base}/demo/token`, { method: "POST", body: { agent: "alice" } });
    const socket = await connect(base, { sub: "watcher" });
    await request(socket, "ticket:subscribe", { ticketId: "2" });
    const statusUpdate = nextEvent(socket, "ticket:update", (u) => u.type === "tickets.update");
    const changed = await call(`${base}/demo/tickets/2`, { method: "POST", body: { status: "solved" }, token: json.token });
    expect(changed.status).to.equal(200);
    expect((await statusUpdate).data).to.include({ id: "2", status: "solved" });
    const commentUpdate = nextEvent(socket, "ticket:update", (u) => u.type === "ticket_comments.insert");
    const added = await call(`${base}/demo/tickets/2/comments`, { method: "POST", body: { body: "  Fixed in the next invoice run  " }, token: json.token });
    expect(added.status).to.equal(201);
    expect((await commentUpdate).data).to.include({ author: "Alice Martin", body: "Fixed in the next invoice run" });
    const rows = await sql(cluster.databaseUrl, "SELECT status FROM public.tickets WHERE id = '2'");
    expect(rows[0]!.status).to.equal("solved");
  });

  it("answers every bad request with a clear error", async () => {
    const cluster = await startCluster(1, { mode: "single", env: { DEMO_UI: "true" } });
    await seedDemo(cluster.databaseUrl);
    const base = cluster.urls[0]!;
    const good = (await call(`${base}/demo/token`, { method: "POST", body: { agent: "carol" } })).json.token as string;
    const cases: Array<[string, Parameters<typeof call>[1], number, string, RegExp]> = [
      ["/demo/token", { method: "POST", body: { agent: "mallory" } }, 400, "INVALID_PAYLOAD", /agent must be one of alice, bob, carol/],
      ["/demo/token", { method: "POST", raw: "{not json" }, 400, "INVALID_PAYLOAD", /JSON/],
      ["/demo/tickets/1", { method: "POST", body: { status: "open" } }, 401, "UNAUTHORIZED", /Bearer/],
      ["/demo/tickets/1", { method: "POST", body: { status: "open" }, token: "x.y.z" }, 401, "UNAUTHORIZED", /malformed/],
      ["/demo/tickets/1", { method: "POST", body: { status: "deleted" }, token: good }, 400, "INVALID_PAYLOAD", /status must be one of open, pending, solved, closed/],
      ["/demo/tickets/99", { method: "POST", body: { status: "open" }, token: good }, 404, "NOT_FOUND", /no ticket 99/],
      ["/demo/tickets/99/comments", { method: "POST", body: { body: "hi" }, token: good }, 404, "NOT_FOUND", /no ticket 99/],
      ["/demo/tickets/1/comments", { method: "POST", body: { body: "   " }, token: good }, 400, "INVALID_PAYLOAD", /must not be empty/],
      ["/demo/tickets/1/comments", { method: "POST", body: { body: "x".repeat(2001) }, token: good }, 400, "INVALID_PAYLOAD", /at most 2000/],
      ["/demo/tickets/bad%20id", {}, 400, "INVALID_PAYLOAD", /ticketId may hold only/],
      ["/demo/tickets/99", {}, 404, "NOT_FOUND", /no ticket 99/],
      ["/demo/nothing", {}, 404, "NOT_FOUND", /no demo route GET \/nothing/],
    ];
    for (const [path, init, status, code, message] of cases) {
      const res = await call(`${base}${path}`, init);
      expect(res.status, `${init?.method ?? "GET"} ${path}`).to.equal(status);
      expect(res.json.error.code, path).to.equal(code);
      expect(res.json.error.message, path).to.match(message);
    }
  });

  it("says that the demo tables are missing instead of failing obscurely", async () => {
    const cluster = await startCluster(1, { mode: "single", env: { DEMO_UI: "true" } });
    const res = await call(`${cluster.urls[0]}/demo/tickets`);
    expect(res.status).to.equal(503);
    expect(res.json.error.message).to.match(/demo tables do not exist/);
  });

  it("serves no page, bundle or demo API without DEMO_UI", async () => {
    const cluster = await startCluster(1, { mode: "single" });
    const base = cluster.urls[0]!;
    for (const path of ["/", "/client.js", "/app.js"]) expect((await call(`${base}${path}`)).status, path).to.equal(404);
    expect((await call(`${base}/demo/token`, { method: "POST", body: { agent: "alice" } })).status).to.equal(404);
    expect((await call(`${base}/healthz`)).status).to.equal(200);
  });

  it("leaves Socket.IO's long-polling requests to the engine (no second, 404 answer from express)", async () => {
    const cluster = await startCluster(1, { mode: "single", env: { DEMO_UI: "true" } });
    const base = `${cluster.urls[0]}/socket.io/?EIO=4&transport=polling`;
    const handshake = await call(base);
    expect(handshake.status).to.equal(200);
    const { sid } = JSON.parse(handshake.text.slice(1)) as { sid: string };
    // with nothing to send, the engine holds a poll open; an express 404 would answer it at once
    // (and the engine's later answer on the same response crashed the process)
    const poll = await fetch(`${base}&sid=${sid}`, { signal: AbortSignal.timeout(500) }).then(
      (res) => `answered ${res.status}`,
      (error: Error) => error.name,
    );
    expect(poll).to.equal("TimeoutError");
    // and a real polling client works end to end
    const socket = await connect(cluster.urls[0]!, { transports: ["polling"], token: await token({ sub: "poller" }) });
    expect(await request(socket, "ticket:subscribe", { ticketId: "1" })).to.deep.include({ ok: true });
  });

  it("builds the browser bundle and the page's files for dist (npm run build:client)", async () => {
    const out = await mkdtemp(join(tmpdir(), "rg-public-"));
    onCleanup("bundle dir", () => rm(out, { recursive: true, force: true }));
    await writeDemoAssets(out);
    expect((await readdir(out)).sort()).to.deep.equal(["app.js", "client.js", "client.js.map", "index.html", "style.css"]);
    const code = await readFile(join(out, "client.js"), "utf8");
    expect(code).to.include("sourceMappingURL=client.js.map");
    // a browser bundle: no Node built-ins, no server code
    expect(code).not.to.match(/from\s*"node:|require\("(fs|net|pg|express)"\)/);
  });
});
