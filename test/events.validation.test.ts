/**
 * Client events with bad input: every malformed payload, unknown event, forbidden ticket and
 * out-of-order request gets an error ack `{ ok: false, error: { code, message } }` (or a
 * `gateway:error` event when the client sent no ack), and the same socket keeps working.
 */
import { expect } from "chai";
import type { Gateway } from "../src/gateway.js";
import { ticketRoom } from "../src/protocol.js";
import { collect, connect, eventually, nextEvent, rawRequest, request, type TestSocket } from "./support/client.js";
import { startCluster } from "./support/cluster.js";

const HUGE = "x".repeat(10_000);
const update = (ticketId: string, seq: number) => ({ ticketId, seq, id: String(seq), type: "test", data: { seq }, at: new Date().toISOString() });

/** `{ ok: false, error: { code, message } }` and nothing else, with a non-empty message. */
function expectErrorAck(ack: unknown, code: string, what: string): void {
  expect(ack, what).to.be.an("object");
  const { ok, error, ...rest } = ack as { ok: unknown; error: { code: unknown; message: unknown } };
  expect(rest, `${what}: extra ack fields`).to.deep.equal({});
  expect(ok, what).to.equal(false);
  expect(Object.keys(error).sort(), `${what}: error fields`).to.deep.equal(["code", "message"]);
  expect(error.code, `${what}: ${String(error.message)}`).to.equal(code);
  expect(error.message, what).to.be.a("string").and.not.empty;
}

let probes = 0;
/** The socket still subscribes, receives a room emit, and unsubscribes. */
async function expectUsable(gateway: Gateway, socket: TestSocket, what: string): Promise<void> {
  const ticketId = `probe-${++probes}`;
  expect(socket.connected, `${what}: still connected`).to.equal(true);
  const ack = await request(socket, "ticket:subscribe", { ticketId });
  expect(ack, `${what}: subscribe after the error`).to.include({ ok: true, ticketId });
  const received = nextEvent(socket, "ticket:update", (u) => u.ticketId === ticketId);
  gateway.io.to(ticketRoom(ticketId)).emit("ticket:update", update(ticketId, 1));
  expect((await received).seq, what).to.equal(1);
  expect(await request(socket, "ticket:unsubscribe", { ticketId }), what).to.deep.equal({ ok: true });
}

type Case = [what: string, event: string, args: unknown[]];

/** Malformed payload shapes for each event (every one an INVALID_PAYLOAD). */
const malformed: Case[] = [
  // ticket:subscribe
  ["subscribe without ticketId", "ticket:subscribe", [{}]],
  ["subscribe with a numeric ticketId", "ticket:subscribe", [{ ticketId: 42 }]],
  ["subscribe with a null ticketId", "ticket:subscribe", [{ ticketId: null }]],
  ["subscribe with an empty ticketId", "ticket:subscribe", [{ ticketId: "" }]],
  ["subscribe with a huge ticketId", "ticket:subscribe", [{ ticketId: HUGE }]],
  ["subscribe with a ticketId holding spaces", "ticket:subscribe", [{ ticketId: "1 OR 1=1" }]],
  ["subscribe with a string sinceSeq", "ticket:subscribe", [{ ticketId: "1", sinceSeq: "5" }]],
  ["subscribe with a negative sinceSeq", "ticket:subscribe", [{ ticketId: "1", sinceSeq: -1 }]],
  ["subscribe with a fractional sinceSeq", "ticket:subscribe", [{ ticketId: "1", sinceSeq: 1.5 }]],
  ["subscribe with a string payload", "ticket:subscribe", ["1"]],
  ["subscribe with a null payload", "ticket:subscribe", [null]],
  ["subscribe with an array payload", "ticket:subscribe", [["1"]]],
  ["subscribe with no payload", "ticket:subscribe", []],
  ["subscribe with extra arguments", "ticket:subscribe", [{ ticketId: "1" }, "extra"]],
  // ticket:unsubscribe
  ["unsubscribe without ticketId", "ticket:unsubscribe", [{}]],
  ["unsubscribe with a boolean ticketId", "ticket:unsubscribe", [{ ticketId: true }]],
  ["unsubscribe with a huge ticketId", "ticket:unsubscribe", [{ ticketId: HUGE }]],
  ["unsubscribe with a number payload", "ticket:unsubscribe", [7]],
  ["unsubscribe with extra arguments", "ticket:unsubscribe", [{ ticketId: "1" }, { ticketId: "2" }]],
  // ticket:typing
  ["typing without typing", "ticket:typing", [{ ticketId: "1" }]],
  ["typing without ticketId", "ticket:typing", [{ typing: true }]],
  ["typing with a string flag", "ticket:typing", [{ ticketId: "1", typing: "yes" }]],
  ["typing with a huge ticketId", "ticket:typing", [{ ticketId: HUGE, typing: true }]],
  ["typing with a string payload", "ticket:typing", ["typing"]],
  ["typing with extra arguments", "ticket:typing", [{ ticketId: "1", typing: true }, true]],
  // auth:refresh
  ["refresh without token", "auth:refresh", [{}]],
  ["refresh with a numeric token", "auth:refresh", [{ token: 1 }]],
  ["refresh with an empty token", "auth:refresh", [{ token: "" }]],
  ["refresh with a huge token", "auth:refresh", [{ token: HUGE }]],
  ["refresh with a string payload", "auth:refresh", ["token"]],
  ["refresh with extra arguments", "auth:refresh", [{ token: "a.b.c" }, "extra"]],
  // unknown events
  ["an unknown event", "ticket:delete", [{ ticketId: "1" }]],
  ["an unknown event without payload", "hello", []],
];

describe("client event validation", () => {
  it("answers every malformed payload with INVALID_PAYLOAD, and the socket stays usable", async () => {
    const { gateways, urls } = await startCluster(1, { env: { EVENT_RATE_PER_SOCKET: "0" } });
    const socket = await connect(urls[0]!);
    for (const [what, event, args] of malformed) {
      expectErrorAck(await rawRequest(socket, event, args), "INVALID_PAYLOAD", what);
      await expectUsable(gateways[0]!, socket, what);
    }
  });

  it("answers an event sent without an ack callback with a gateway:error event", async () => {
    const { gateways, urls } = await startCluster(1, { env: { EVENT_RATE_PER_SOCKET: "0" } });
    const socket = await connect(urls[0]!);
    const cases: Case[] = [
      ["a valid subscribe without ack", "ticket:subscribe", [{ ticketId: "1" }]],
      ["an invalid subscribe without ack", "ticket:subscribe", [{ ticketId: 1 }]],
      ["an unsubscribe without ack", "ticket:unsubscribe", [{ ticketId: "1" }]],
      ["a typing without ack", "ticket:typing", [{ ticketId: "1", typing: true }]],
      ["a refresh without ack", "auth:refresh", [{ token: "a.b.c" }]],
      ["an unknown event without ack", "no-such-event", [{}]],
    ];
    const errors = collect(socket, "gateway:error");
    for (const [what, event, args] of cases) {
      const before = errors.length;
      (socket as unknown as { emit(e: string, ...a: unknown[]): void }).emit(event, ...args);
      await eventually(() => errors.length > before, `the gateway:error for ${what}`);
      const report = errors[before]!;
      expect(Object.keys(report).sort(), what).to.deep.equal(["error", "event"]);
      expect(report.event, what).to.equal(event);
      expectErrorAck({ ok: false, error: report.error }, "INVALID_PAYLOAD", what);
      await expectUsable(gateways[0]!, socket, what);
    }
    // a subscribe without ack is refused, not half-done: the socket did not join ticket 1
    const received = collect(socket, "ticket:update");
    gateways[0]!.io.to(ticketRoom("1")).emit("ticket:update", update("1", 1));
    await expectUsable(gateways[0]!, socket, "after the emit to ticket 1");
    expect(received.filter((u) => u.ticketId === "1")).to.be.empty;
  });

  it("refuses tickets outside an explicit tickets claim with FORBIDDEN, and allows every ticket with '*'", async () => {
    const { gateways, urls } = await startCluster(1);
    const limited = await connect(urls[0]!, { sub: "carol", tickets: ["1", "2"] });
    for (const ticketId of ["3", "10", "1 ", "probe", "*"]) {
      const ack = await rawRequest(limited, "ticket:subscribe", [{ ticketId }]);
      // "*" and "1 " are not valid ticket ids at all; the rest are valid but not granted
      expectErrorAck(ack, /^[A-Za-z0-9_.:@-]+$/.test(ticketId) ? "FORBIDDEN" : "INVALID_PAYLOAD", `ticket ${JSON.stringify(ticketId)}`);
    }
    // the same socket still subscribes to what it may see, and receives updates there
    for (const ticketId of ["1", "2"]) {
      expect(await request(limited, "ticket:subscribe", { ticketId })).to.include({ ok: true, ticketId });
    }
    const received = collect(limited, "ticket:update");
    gateways[0]!.io.to(ticketRoom("3")).emit("ticket:update", update("3", 1));
    gateways[0]!.io.to(ticketRoom("2")).emit("ticket:update", update("2", 1));
    await eventually(() => received.length > 0, "the update of ticket 2");
    expect(received.map((u) => u.ticketId)).to.deep.equal(["2"]);

    const everything = await connect(urls[0]!, { sub: "dave", tickets: ["*"] });
    for (const ticketId of ["3", "10", "anything-at-all"]) {
      expect(await request(everything, "ticket:subscribe", { ticketId })).to.include({ ok: true, ticketId });
    }
    const none = await connect(urls[0]!, { sub: "erin", tickets: [] });
    expectErrorAck(await rawRequest(none, "ticket:subscribe", [{ ticketId: "1" }]), "FORBIDDEN", "an empty tickets claim");
  });

  it("answers unsubscribe and typing on a ticket not subscribed with NOT_SUBSCRIBED", async () => {
    const { gateways, urls } = await startCluster(1);
    const socket = await connect(urls[0]!);
    expectErrorAck(await rawRequest(socket, "ticket:unsubscribe", [{ ticketId: "5" }]), "NOT_SUBSCRIBED", "unsubscribe first");
    await expectUsable(gateways[0]!, socket, "after unsubscribe");
    expectErrorAck(await rawRequest(socket, "ticket:typing", [{ ticketId: "5", typing: true }]), "NOT_SUBSCRIBED", "typing first");
    await expectUsable(gateways[0]!, socket, "after typing");
    // after an unsubscribe the ticket is no longer subscribed either
    await request(socket, "ticket:subscribe", { ticketId: "5" });
    expect(await request(socket, "ticket:typing", { ticketId: "5", typing: true })).to.include({ ok: true });
    expect(await request(socket, "ticket:unsubscribe", { ticketId: "5" })).to.deep.equal({ ok: true });
    expectErrorAck(await rawRequest(socket, "ticket:unsubscribe", [{ ticketId: "5" }]), "NOT_SUBSCRIBED", "a second unsubscribe");
    expectErrorAck(await rawRequest(socket, "ticket:typing", [{ ticketId: "5", typing: false }]), "NOT_SUBSCRIBED", "typing after unsubscribe");
    await expectUsable(gateways[0]!, socket, "at the end");
  });
});
