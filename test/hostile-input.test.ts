/**
 * Property-based abuse of every client event against a gateway in its own process: random and
 * malformed payloads, wrong types, deep objects, huge strings, binary, unknown and reserved event
 * names, missing acks, and raw protocol garbage.
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

describe("hostile input", () => {
  it("random and malformed traffic on every event never crashes the gateway, gets well-formed error replies, and never disturbs other clients", async function () {
    this.timeout(240_000);
    const databaseUrl = await createTestDatabase();
    const env = clusterEnv({ mode: "classic", databaseUrl, prefix: randomPrefix(), env: { EVENT_RATE_PER_SOCKET: "1000/1s", LOG_LEVEL: "warn" } });
    const gateway = await spawnGateway(env);
    const jwt = await token({ sub: "hostile" });
    const watcher = await connect(gateway.url, { sub: "watcher" });
    expect(await request(watcher, "ticket:subscribe", { ticketId: "watched" })).to.include({ ok: true });
    const updates = collect(watcher, "ticket:update");
    let published = 0;
    const publish = async () => {
      published += 1;
      await sql(databaseUrl, "SELECT realtime.publish_ticket_event('watched', 'test', $1::jsonb)", [JSON.stringify({ n: published })]);
    };
    await publish();
    await eventually(() => updates.length === 1, "the first update");
    const before = sample(await scrape(gateway.metricsPort), "process_resident_memory_bytes")!;

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
    await eventually(() => updates.length === published, `all ${published} updates to reach the bystander`);
    expect(updates.map((u) => u.seq)).to.deep.equal(Array.from({ length: published }, (_, i) => i + 1));
    expect(watcher.connected).to.equal(true);
    hostile.disconnect();
    // every dropped and replaced socket was cleaned up: only the watcher is left
    await eventually(async () => sample(await scrape(gateway.metricsPort), "gateway_connections") === 1, "the hostile sockets to be gone");
    const after = sample(await scrape(gateway.metricsPort), "process_resident_memory_bytes")!;
    expect(after - before, `RSS grew from ${before} to ${after} over ${runs} runs and ${disconnects} reconnects`).to.be.below(150 * 1024 * 1024);
  });
});
