import { expect } from "chai";
import { CursorError, formatCursor, MAX_CURSOR_LENGTH, parseCursor } from "../src/sse/cursor.js";

describe("SSE cursor (the stream's Last-Event-ID)", () => {
  it("round-trips every ticket's seq, ticket ids with dots, colons and @ included", () => {
    const cursor = new Map([["1", 5], ["org.acme:42", 9], ["a@b-c_d", 0]]);
    const text = formatCursor(cursor);
    expect(text).to.equal("1.5~org.acme:42.9~a@b-c_d.0");
    expect(parseCursor(text, 100)).to.deep.equal(cursor);
    expect(parseCursor("", 100).size).to.equal(0);
  });

  for (const bad of ["5", ".5", "1.", "1.-1", "1.05", "1.1e3", "1.5~", "~1.5", "1.5~1.6", "bad id.1", "1.99999999999999999", "1.5,2.6"]) {
    it(`refuses ${JSON.stringify(bad)}`, () => {
      expect(() => parseCursor(bad, 100)).to.throw(CursorError);
    });
  }

  it("bounds its size and its number of tickets before splitting", () => {
    expect(() => parseCursor("1.1".padEnd(MAX_CURSOR_LENGTH + 1, "1"), 100)).to.throw(CursorError, /longer than/);
    expect(() => parseCursor("1.1~2.2~3.3", 2)).to.throw(CursorError, /more than 2 tickets/);
  });
});
