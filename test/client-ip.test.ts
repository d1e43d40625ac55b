import { expect } from "chai";
import { clientIp, limitKey, normalizeIp } from "../src/socket/client-ip.js";

describe("client IP", () => {
  describe("normalizeIp", () => {
    const cases: Array<[string, string]> = [
      ["1.2.3.4", "1.2.3.4"],
      ["  1.2.3.4 ", "1.2.3.4"],
      ["1.2.3.4:5678", "1.2.3.4"],
      ["::ffff:1.2.3.4", "1.2.3.4"],
      ["::FFFF:1.2.3.4", "1.2.3.4"],
      ["::ffff:102:304", "1.2.3.4"],
      ["0:0:0:0:0:ffff:a00:1", "10.0.0.1"],
      ["[::ffff:1.2.3.4]:443", "1.2.3.4"],
      ["2001:DB8:0:0:0:0:0:1", "2001:db8::1"],
      ["2001:db8::1", "2001:db8::1"],
      ["2001:0db8:0000::0001", "2001:db8::1"],
      ["[2001:db8::1]", "2001:db8::1"],
      ["[2001:db8::1]:8080", "2001:db8::1"],
      ["fe80::1%eth0", "fe80::1"],
      ["::1", "::1"],
    ];
    for (const [input, expected] of cases) {
      it(`${JSON.stringify(input)} → ${expected}`, () => expect(normalizeIp(input)).to.equal(expected));
    }
    it("gives every spelling of one IPv6 client the same key", () => {
      const spellings = ["2001:db8:0:0:1:0:0:1", "2001:DB8::1:0:0:1", "2001:0db8:0:0:1::1", "[2001:db8::1:0:0:1]:1"];
      expect(new Set(spellings.map(normalizeIp))).to.have.property("size", 1);
    });
    it("leaves non-addresses for the caller to reject", () => {
      expect(normalizeIp("not-an-ip")).to.equal("not-an-ip");
      expect(normalizeIp(undefined)).to.equal("unknown");
      expect(normalizeIp("")).to.equal("unknown");
    });
  });

  describe("clientIp", () => {
    const peer = "::ffff:10.0.0.9";
    it("TRUST_PROXY=0: the peer address, whatever X-Forwarded-For says", () => {
      expect(clientIp(peer, {}, 0)).to.equal("10.0.0.9");
      expect(clientIp(peer, { "x-forwarded-for": "6.6.6.6" }, 0)).to.equal("10.0.0.9");
      expect(clientIp(peer, { "x-forwarded-for": "6.6.6.6, 7.7.7.7" }, 0)).to.equal("10.0.0.9");
    });
    it("TRUST_PROXY=1: the right-most hop (what our proxy saw), not what the client wrote", () => {
      expect(clientIp(peer, { "x-forwarded-for": "203.0.113.5" }, 1)).to.equal("203.0.113.5");
      // a client that sends its own header gets the real address appended by our proxy
      expect(clientIp(peer, { "x-forwarded-for": "6.6.6.6, 1.1.1.1, 203.0.113.5" }, 1)).to.equal("203.0.113.5");
      expect(clientIp(peer, { "x-forwarded-for": "6.6.6.6,203.0.113.5" }, 1)).to.equal("203.0.113.5");
    });
    it("TRUST_PROXY=2: the second hop from the right (CDN in front of an ingress)", () => {
      expect(clientIp(peer, { "x-forwarded-for": "6.6.6.6, 203.0.113.5, 198.51.100.7" }, 2)).to.equal("203.0.113.5");
    });
    it("fewer hops than trusted proxies: the left-most hop", () => {
      expect(clientIp(peer, { "x-forwarded-for": "203.0.113.5" }, 3)).to.equal("203.0.113.5");
    });
    it("no header behind a trusted proxy: the peer", () => {
      expect(clientIp(peer, {}, 1)).to.equal("10.0.0.9");
      expect(clientIp(peer, { "x-forwarded-for": "" }, 1)).to.equal("10.0.0.9");
      expect(clientIp(peer, { "x-forwarded-for": " , " }, 1)).to.equal("10.0.0.9");
    });
    it("a forged or garbage trusted hop falls back to the peer instead of becoming a free key", () => {
      expect(clientIp(peer, { "x-forwarded-for": "1.1.1.1, evil" }, 1)).to.equal("10.0.0.9");
      expect(clientIp(peer, { "x-forwarded-for": "1.1.1.1, 999.1.1.1" }, 1)).to.equal("10.0.0.9");
      expect(clientIp(peer, { "x-forwarded-for": "1.1.1.1, <script>" }, 1)).to.equal("10.0.0.9");
    });
    it("IPv6 and IPv4-mapped hops count as one client each", () => {
      expect(clientIp(peer, { "x-forwarded-for": "6.6.6.6, ::ffff:203.0.113.5" }, 1)).to.equal("203.0.113.5");
      expect(clientIp(peer, { "x-forwarded-for": "6.6.6.6, [2001:DB8::0:1]:51234" }, 1)).to.equal("2001:db8::1");
      expect(clientIp(peer, { "x-forwarded-for": "203.0.113.5:61000" }, 1)).to.equal("203.0.113.5");
    });
    it("several X-Forwarded-For headers read as one list", () => {
      expect(clientIp(peer, { "x-forwarded-for": ["6.6.6.6", "203.0.113.5"] as unknown as string }, 1)).to.equal("203.0.113.5");
    });
  });
});

describe("per-IP limit keys (IPV6_PREFIX_LENGTH)", () => {
  const cases: Array<[string, number, string]> = [
    ["203.0.113.7", 64, "203.0.113.7"],
    ["2001:db8:1:2:3:4:5:6", 64, "2001:db8:1:2::/64"],
    ["2001:db8:1:2::1", 64, "2001:db8:1:2::/64"],
    ["2001:db8:1:2:ffff:ffff:ffff:ffff", 64, "2001:db8:1:2::/64"],
    ["2001:db8:1:3::1", 64, "2001:db8:1:3::/64"],
    ["2001:db8:1:2:3:4:5:6", 48, "2001:db8:1::/48"],
    ["2001:db8:1:ff:3:4:5:6", 56, "2001:db8:1::/56"],
    ["2001:db8:1:1ff:3:4:5:6", 56, "2001:db8:1:100::/56"],
    ["2001:db8::1", 128, "2001:db8::1"],
    ["::1", 64, "::/64"],
    ["fe80::1", 10, "fe80::/10"],
  ];
  for (const [ip, prefix, key] of cases) {
    it(`${ip} /${prefix} → ${key}`, () => expect(limitKey(normalizeIp(ip), prefix)).to.equal(key));
  }
});
