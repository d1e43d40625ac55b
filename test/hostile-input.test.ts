/**
 * Property-based abuse of every client event against a gateway in its own process: random and
 * malformed payloads, wrong types, deep objects, huge strings, binary, unknown and reserved event
 * names, missing acks, and raw protocol garbage; and below the Socket.IO client, raw Engine.IO
 * sessions (WebSocket and long-polling) sending packets of every type, truncated, binary,
 * oversized and for unknown namespaces.
 */
import { expect } from "chai";
import fc from "fast-check";
import { ErrorCode } from "../src/errors.js";
import type { Ack } from "../src/protocol.js";
import { collect, connect, eventually, nextEvent, request, token, type TestSocket } from "./support/client.js";
import { clusterEnv, randomPrefix } from "./support/cluster.js";
import { createTestDatabase, sql } from "./support/db.js";
import { sample, scrape } from "./support/metrics.js";
import { spawnGateway } from "./support/process.js";
import { poll, pollingHandshake, post, rawWebSocket, type RawWebSocket } from "./support/raw-engine.js";

const MAX_PAYLOAD = 16_384;
const KNOWN = ["ticket:subscribe", "ticket:unsubscribe", "ticket:typing", "auth:refresh"];
// the official client refuses to emit these; the raw command sends them anyway
const RESERVED = new Set(["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"]);
const CODES = new Set<string>(Object.values(ErrorCode));

const deep = fc.integer({ min: 1, max: 3000 }).map((depth) => {
  let value: unknown = { ticketId: "1" };
  for (let i = 0; i < depth; i++) value = i % 2 ? [value] : { ticketId: value };
  // fast-check would print a counterexample recursively and overflow the stack
  return labelled(value as object, `deep(${depth})`);
});
const payload: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }),
  fc.record({ ticketId: fc.oneof(fc.string(), fc.integer(), fc.constant(null), fc.array(fc.string())), sinceSeq: fc.oneof(fc.double(), fc.integer(), fc.string()), typing: fc.anything({ maxDepth: 2 }) }, { requiredKeys: [] }),
  fc.record({ ticketId: fc.stringMatching(/^[A-Za-z0-9_.:@-]{1,20}$/), sinceSeq: fc.nat(), typing: fc.boolean(), token: fc.string() }, { requiredKeys: ["ticketId"] }),
  fc.constantFrom({ __proto__: { polluted: true } }, JSON.parse('{"__proto__":{"polluted":true},"ticketId":"1"}'), { constructor: { prototype: { polluted: true } } }),
  deep,
  fc.integer({ min: 1_000, max: 40_000 }).map((n) => labelled({ ticketId: "x".repeat(n), token: "y".repeat(n) }, `huge(${n})`)),
  fc.integer({ min: 0, max: 30_000 }).map((n) => labelled(Buffer.alloc(n, 7), `binary(${n})`)),
  fc.record({ ticketId: fc.constant("1"), blob: fc.uint8Array({ maxLength: 2_000 }).map((b) => labelled(Buffer.from(b), `binary(${b.length})`)) }),
);
const eventName = fc.oneof(fc.constantFrom(...KNOWN), fc.string({ maxLength: 80 }), fc.constant("x".repeat(5000)).map((e) => e)).filter((e) => !RESERVED.has(e));
const command = fc.oneof(
  {
    weight: 8,
    arbitrary: fc
      .record({ kind: fc.constant("emit" as const), event: eventName, args: fc.array(payload, { maxLength: 3 }), ack: fc.boolean() })
      // socket.io-client itself overflows its stack splitting binary out of a very deep packet
      .filter((c) => !(c.args.some((a) => labelOf(a).startsWith("deep")) && c.args.some((a) => /binary/.test(labelOf(a)) || (a as { blob?: unknown })?.blob !== undefined))),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("raw" as const),
      frame: fc.oneof(fc.string({ maxLength: 200 }), fc.constantFrom('2["disconnect"]', '2["connect",{}]', "2[", '21["ticket:subscribe"]', "2{}", '2["ticket:subscribe",{"ticketId":"1"}]', "5", "0/nope,", "451-[]")),
    }),
  },
);
type Command = typeof command extends fc.Arbitrary<infer C> ? C : never;

/** Rough wire size (largest frame): what decides whether MAX_PAYLOAD_BYTES closes the connection. */
function wireSize(event: string, args: unknown[]): number {
  // iterative: the deep payloads would overflow a recursive walk (or JSON.stringify with a replacer)
  let text = Buffer.byteLength(event) + 8;
  let largestBinary = 0;
  const stack: unknown[] = [...args];
  while (stack.length > 0) {
    const value = stack.pop();
    if (Buffer.isBuffer(value)) {
      largestBinary = Math.max(largestBinary, value.length);
      text += 30;
    } else if (typeof value === "string") text += Buffer.byteLength(JSON.stringify(value));
    else if (value !== null && typeof value === "object") {
      for (const [key, child] of Object.entries(value)) {
        text += Buffer.byteLength(JSON.stringify(key)) + 2;
        stack.push(child);
      }
      text += 2;
    } else text += String(value).length + 1;
  }
  return Math.max(text, largestBinary);
}

function labelOf(value: unknown): string {
  const method = value !== null && typeof value === "object" ? (value as Record<symbol, unknown>)[fc.toStringMethod] : undefined;
  return typeof method === "function" ? String(method.call(value)) : "";
}

/** Print big generated values by their shape, not their bytes, when fast-check reports one. */
function labelled<T extends object>(value: T, label: string): T {
  Object.defineProperty(value, fc.toStringMethod, { value: () => label, enumerable: false });
  return value;
}

function wellFormed(reply: unknown): void {
  expect(reply, "reply").to.be.an("object");
  const ack = reply as Ack<object>;
  if (ack.ok === true) return;
  expect(ack.ok).to.equal(false);
  expect(ack.error).to.be.an("object");
  expect(CODES.has(ack.error.code), `code ${ack.error.code}`).to.equal(true);
  expect(ack.error.message).to.be.a("string").and.not.empty;
}

/**
 * A gateway child process, a token for the attacker, and a well-behaved watcher subscribed to
 * ticket "watched" whose updates (and the RSS at the start) tell whether the attack disturbed it.
 */
async function watchedGateway(attacker: string) {
  const databaseUrl = await createTestDatabase();
  const env = clusterEnv({ mode: "classic", databaseUrl, prefix: randomPrefix(), env: { EVENT_RATE_PER_SOCKET: "1000/1s", LOG_LEVEL: "warn" } });
  const gateway = await spawnGateway(env);
  const jwt = await token({ sub: attacker });
  const watcher = await connect(gateway.url, { sub: "watcher" });
  expect(await request(watcher, "ticket:subscribe", { ticketId: "watched" })).to.include({ ok: true });
  const updates = collect(watcher, "ticket:update");
  let count = 0;
  const publish = async () => {
    count += 1;
    await sql(databaseUrl, "SELECT realtime.publish_ticket_event('watched', 'test', $1::jsonb)", [JSON.stringify({ n: count })]);
  };
  await publish();
  await eventually(() => updates.length === 1, "the first update");
  const before = sample(await scrape(gateway.metricsPort), "process_resident_memory_bytes")!;
  return { gateway, jwt, watcher, updates, publish, published: () => count, before };
}

describe("hostile input", () => {
  it("random and malformed traffic on every event never crashes the gateway, gets well-formed error replies, and never disturbs other clients", async function () {
    this.timeout(240_000);
    const { gateway, jwt, watcher, updates, publish, published, before } = await watchedGateway("hostile");

    let hostile: TestSocket = await connect(gateway.url, { token: jwt });
    let runs = 0;
    let disconnects = 0;
    const replace = async () => {
      hostile.disconnect();
      disconnects += 1;
      hostile = await connect(gateway.url, { token: jwt });
    };

    const run = async (cmd: Command) => {
      runs += 1;
      if (runs % 40 === 0) await publish();
      if (!hostile.connected) await replace();
      const socket = hostile;
      const dropped = new Promise<"dropped">((resolve) => socket.once("disconnect", () => resolve("dropped")));
      if (cmd.kind === "raw") {
        socket.io.engine.write(cmd.frame);
        // whatever the frame did, the next request is either answered or the connection was closed
        const probe = (socket.timeout(5000) as unknown as { emitWithAck(e: string, p: unknown): Promise<unknown> }).emitWithAck("ticket:unsubscribe", { ticketId: "nope" });
        const outcome = await Promise.race([probe.catch(() => "timeout"), dropped]);
        if (outcome !== "dropped") wellFormed(outcome);
        return;
      }
      const size = wireSize(cmd.event, cmd.args);
      let outcome: unknown;
      if (cmd.ack) {
        const reply = (socket.timeout(5000) as unknown as { emitWithAck(e: string, ...a: unknown[]): Promise<unknown> }).emitWithAck(cmd.event, ...cmd.args);
        outcome = await Promise.race([reply.catch((e: Error) => `no ack: ${e.message}`), dropped]);
        if (outcome !== "dropped") wellFormed(outcome);
      } else {
        const error = nextEvent(socket, "gateway:error", () => true, 5000);
        (socket.emit as (event: string, ...args: unknown[]) => unknown)(cmd.event, ...cmd.args);
        outcome = await Promise.race([error.catch((e: Error) => `no gateway:error: ${e.message}`), dropped]);
        if (outcome !== "dropped") {
          const info = outcome as { event: string; error: unknown };
          expect(info.event, "gateway:error names the event").to.be.a("string");
          wellFormed({ ok: false, error: info.error });
        }
      }
      // only an oversized packet may cost the sender its connection
      if (outcome === "dropped") expect(size, `dropped for a ${size}-byte packet`).to.be.above(MAX_PAYLOAD / 2);
      if (size < MAX_PAYLOAD / 2) expect(outcome).to.not.equal("dropped");
    };

    await fc.assert(fc.asyncProperty(command, run), { numRuns: 400, seed: Number(process.env.FC_SEED ?? Date.now() % 2 ** 31), endOnFailure: true });

    expect(gateway.child.exitCode, gateway.output.slice(-10).join("\n")).to.equal(null);
    expect((await fetch(`${gateway.url}/healthz`)).status).to.equal(200);
    await publish();
    await eventually(() => updates.length === published(), `all ${published()} updates to reach the bystander`);
    expect(updates.map((u) => u.seq)).to.deep.equal(Array.from({ length: published() }, (_, i) => i + 1));
    expect(watcher.connected).to.equal(true);
    hostile.disconnect();
    // every dropped and replaced socket was cleaned up: only the watcher is left
    await eventually(async () => sample(await scrape(gateway.metricsPort), "gateway_connections") === 1, "the hostile sockets to be gone");
    const after = sample(await scrape(gateway.metricsPort), "process_resident_memory_bytes")!;
    expect(after - before, `RSS grew from ${before} to ${after} over ${runs} runs and ${disconnects} reconnects`).to.be.below(150 * 1024 * 1024);
  });
});

// ---- the engine level: raw sessions, no socket.io-client to keep the frames well-formed ----

const jsonText = fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? "null");
const namespace = fc.constantFrom("", "/nope,", "/admin,", "/,", "/" + "n".repeat(300) + ",", "nope,", "/\u0000,");
const socketIoPacket = fc
  .tuple(fc.integer({ min: 0, max: 9 }), namespace, fc.oneof(fc.constant(""), fc.nat({ max: 2 ** 40 }).map(String)), fc.oneof(jsonText, fc.string({ maxLength: 60 })))
  .map(([type, nsp, id, data]) => `4${type}${nsp}${id}${data}`);
const engineFrame: fc.Arbitrary<string | Buffer> = fc.oneof(
  // every Engine.IO packet type, with random payloads
  fc.tuple(fc.integer({ min: 0, max: 9 }), fc.string({ maxLength: 40 })).map(([type, data]) => `${type}${data}`),
  socketIoPacket,
  // truncated frames of well-formed packets
  fc.tuple(fc.constantFrom('42["ticket:subscribe",{"ticketId":"1"}]', '40{"token":"x"}', '451-["x",{"_placeholder":true,"num":0}]', "0{\"sid\":1}"), fc.nat()).map(([frame, cut]) => frame.slice(0, cut % frame.length)),
  // binary attachments announced and never sent, or sent unannounced
  fc.constantFrom('452-["ticket:subscribe",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]', '451-["x",{"_placeholder":true,"num":7}]', "45-[]", '4999999999-["x"]'),
  fc.uint8Array({ maxLength: 3000 }).map((bytes) => Buffer.from(bytes)),
  // oversized (MAX_PAYLOAD_BYTES is 16 KiB)
  fc.integer({ min: MAX_PAYLOAD + 1, max: 4 * MAX_PAYLOAD }).map((n) => `42["ticket:subscribe",{"ticketId":"${"x".repeat(n)}"}]`),
  fc.constantFrom("", "\x1e", "4", "40", "41", "6", "5", "1", "2probe", "3probe"),
);
const engineCommand = fc.oneof(
  fc.record({ kind: fc.constant("ws" as const), join: fc.boolean(), frames: fc.array(engineFrame, { minLength: 1, maxLength: 5 }) }),
  fc.record({
    kind: fc.constant("polling" as const),
    join: fc.boolean(),
    bodies: fc.array(fc.oneof(fc.array(fc.oneof(engineFrame.filter((f): f is string => typeof f === "string"), fc.string({ maxLength: 30 })), { maxLength: 4 }).map((parts) => parts.join("\x1e")), fc.uint8Array({ maxLength: 2000 }).map((b) => Buffer.from(b))), { minLength: 1, maxLength: 3 }),
  }),
);
type EngineCommand = typeof engineCommand extends fc.Arbitrary<infer C> ? C : never;

/** the session answered `probe` (a reply starting with one of `answers`) or was closed */
async function answeredOrClosed(ws: RawWebSocket, from: number, answers: string[]): Promise<void> {
  await eventually(() => !ws.isOpen() || ws.messages.slice(from).some((m) => answers.some((a) => m.startsWith(a))), "a reply to the probe or a close", 10_000);
}

describe("hostile input at the engine level", () => {
  it("raw WebSocket and long-polling sessions sending every packet type, truncated, binary, oversized and unknown-namespace frames never take the process down", async function () {
    this.timeout(240_000);
    const { gateway, jwt, watcher, updates, publish, published, before } = await watchedGateway("raw");
    const open: RawWebSocket[] = [];
    let runs = 0;

    const run = async (cmd: EngineCommand) => {
      runs += 1;
      if (runs % 25 === 0) await publish();
      if (cmd.kind === "ws") {
        const outcome = await rawWebSocket(gateway.url);
        expect(outcome.kind, "a raw WebSocket opens (no caps in this test)").to.equal("open");
        const ws = (outcome as { ws: RawWebSocket }).ws;
        open.push(ws);
        if (cmd.join) {
          ws.send(`40${JSON.stringify({ token: jwt })}`);
          await answeredOrClosed(ws, 1, ["40{", "44"]);
        }
        for (const frame of cmd.frames) if (ws.isOpen()) ws.send(frame);
        // whatever the frames did, the session still answers, or the server closed it
        const from = ws.messages.length;
        if (!ws.isOpen()) return;
        if (cmd.join && ws.messages.some((m) => m.startsWith("40{"))) ws.send('4277["ticket:unsubscribe",{"ticketId":"nope"}]');
        else ws.send(`40${JSON.stringify({ token: jwt })}`);
        await answeredOrClosed(ws, from, ["4377[", "40{", "44"]);
        return;
      }
      const handshake = await pollingHandshake(gateway.url);
      expect(handshake.status, handshake.body).to.equal(200);
      const sid = handshake.sid!;
      if (cmd.join) {
        await post(gateway.url, sid, `40${JSON.stringify({ token: jwt })}`);
        expect(await poll(gateway.url, sid)).to.not.equal("timeout");
      }
      for (const body of cmd.bodies) {
        const status = await post(gateway.url, sid, body, typeof body === "string" ? "text/plain;charset=UTF-8" : "application/octet-stream");
        expect([200, 400, 413], `POST answered ${status}`).to.include(status);
      }
      // the session answers a CONNECT, or it is gone (400 for its sid)
      const status = await post(gateway.url, sid, `40${JSON.stringify({ token: jwt })}`);
      if (status === 200) expect(await poll(gateway.url, sid)).to.not.equal("timeout");
      // leave like a client does (an engine close packet), so the session's slot is free now
      if (status === 200) expect([200, 400]).to.include(await post(gateway.url, sid, "1"));
      // and nothing is answered twice or crashes on a sid that is gone
      expect((await poll(gateway.url, "no-such-sid")) as { status: number }).to.include({ status: 400 });
    };

    await fc.assert(fc.asyncProperty(engineCommand, run), { numRuns: 200, seed: Number(process.env.FC_SEED ?? Date.now() % 2 ** 31), endOnFailure: true });

    expect(gateway.child.exitCode, gateway.output.slice(-10).join("\n")).to.equal(null);
    expect((await fetch(`${gateway.url}/healthz`)).status).to.equal(200);
    for (const ws of open) ws.socket.terminate();
    await publish();
    await eventually(() => updates.length === published(), `all ${published()} updates to reach the bystander`);
    expect(updates.map((u) => u.seq)).to.deep.equal(Array.from({ length: published() }, (_, i) => i + 1));
    expect(watcher.connected).to.equal(true);
    // every raw session let go of its slot: only the watcher holds one (polling ones time out)
    await eventually(async () => sample(await scrape(gateway.metricsPort), "gateway_engine_sessions") === 1, "the raw sessions to be gone", 30_000, 200);
    expect(sample(await scrape(gateway.metricsPort), "gateway_connections")).to.equal(1);
    const fresh = await connect(gateway.url, { sub: "after" });
    expect(await request(fresh, "ticket:subscribe", { ticketId: "watched" })).to.include({ ok: true });
    const after = sample(await scrape(gateway.metricsPort), "process_resident_memory_bytes")!;
    expect(after - before, `RSS grew from ${before} to ${after} over ${runs} runs`).to.be.below(150 * 1024 * 1024);
  });
});
