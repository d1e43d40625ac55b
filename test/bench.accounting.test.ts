import { expect } from "chai";
import { addSummary, emptySummary, joinLatencies, latencyStats, SeqStream, summarizeStream } from "../src/bench/accounting.js";
import { decodeEio, encodeConnect, encodeEvent } from "../src/bench/eio-codec.js";

function streamOf(seqs: number[], base = 0): SeqStream {
  const stream = new SeqStream(base);
  for (const seq of seqs) stream.record(seq);
  return stream;
}

describe("bench accounting", () => {
  it("reports a clean stream as clean", () => {
    expect(summarizeStream(streamOf([1, 2, 3, 4]), 4)).to.deep.equal({ streams: 1, expected: 4, received: 4, lost: 0, duplicates: 0, outOfOrder: 0, phantom: 0 });
  });

  it("reports exactly one injected loss, one duplicate and one reordering", () => {
    // committed 1..6: 3 never arrives, 2 arrives twice, 5 arrives after 6
    const summary = summarizeStream(streamOf([1, 2, 2, 4, 6, 5]), 6);
    expect(summary).to.deep.equal({ streams: 1, expected: 6, received: 6, lost: 1, duplicates: 1, outOfOrder: 1, phantom: 0 });
  });

  it("counts from the subscribe point, and a seq the database does not hold as phantom", () => {
    const summary = summarizeStream(streamOf([11, 12, 14], 10), 13);
    expect(summary).to.include({ expected: 3, lost: 1, phantom: 1 });
    expect(summarizeStream(streamOf([10], 10), 10)).to.include({ duplicates: 1, expected: 0 });
  });

  it("resumes from the highest contiguous seq", () => {
    const stream = streamOf([1, 2, 4]);
    expect(stream.contiguous).to.equal(2);
    stream.record(3);
    expect(stream.contiguous).to.equal(4);
  });

  it("adds per-ticket summaries", () => {
    const total = addSummary(addSummary(emptySummary(), summarizeStream(streamOf([1, 3]), 3)), summarizeStream(streamOf([1, 1, 2, 3]), 3));
    expect(total).to.include({ streams: 2, expected: 6, lost: 1, duplicates: 1 });
  });

  it("joins receive times to commit times, clamping early receives at 0", () => {
    const commitAt = Float64Array.from([1000, 1005, NaN]);
    const join = joinLatencies(commitAt, Float64Array.from([0, 1010, 1, 1003, 2, 1020, 7, 1030]));
    expect([...join.latencies]).to.deep.equal([10, 0]);
    expect(join.negative).to.equal(1);
    expect(join.unmatched).to.equal(2);
  });

  it("takes nearest-rank percentiles", () => {
    const stats = latencyStats(Float64Array.from({ length: 100 }, (_, i) => i + 1));
    expect(stats).to.include({ p50: 50, p90: 90, p99: 99, max: 100, count: 100 });
  });
});

describe("bench Engine.IO / Socket.IO codec", () => {
  it("decodes open, ping, events and acks", () => {
    expect(decodeEio('0{"sid":"a","pingInterval":25000,"pingTimeout":20000}')).to.deep.include({ kind: "open" });
    expect(decodeEio("2")).to.deep.equal({ kind: "ping" });
    expect(decodeEio('42["ticket:update",{"seq":1}]')).to.deep.equal({ kind: "message", packet: { type: 2, nsp: "/", data: ["ticket:update", { seq: 1 }] } });
    expect(decodeEio('4317[{"ok":true}]')).to.deep.equal({ kind: "message", packet: { type: 3, nsp: "/", id: 17, data: [{ ok: true }] } });
    expect(decodeEio('44{"message":"no","data":{"code":"UNAUTHORIZED"}}')).to.deep.include({ kind: "message" });
    expect(decodeEio('40/admin,{"sid":"x"}')).to.deep.equal({ kind: "message", packet: { type: 0, nsp: "/admin", data: { sid: "x" } } });
  });

  it("encodes connect with auth and events with ack ids", () => {
    expect(encodeConnect({ token: "t" })).to.equal('40{"token":"t"}');
    expect(encodeEvent("ticket:subscribe", [{ ticketId: "1" }], 3)).to.equal('423["ticket:subscribe",{"ticketId":"1"}]');
  });

  it("refuses an unknown packet type", () => {
    expect(() => decodeEio("9")).to.throw(/unknown Engine.IO packet/);
  });
});
