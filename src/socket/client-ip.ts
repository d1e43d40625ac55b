/**
 * The client's IP for per-IP limits. With TRUST_PROXY=0 it is the socket's peer address; with
 * TRUST_PROXY=n it is the n-th address from the right of X-Forwarded-For (the hop our n-th proxy
 * saw), so a client cannot choose its own IP by sending the header.
 */
import { isIP } from "node:net";
import type { IncomingHttpHeaders } from "node:http";

/**
 * One spelling per client: IPv6 in its canonical (RFC 5952) form without zone id, IPv4-mapped IPv6
 * (`::ffff:1.2.3.4`, `::ffff:102:304`) as the IPv4 address, ports that some proxies append dropped.
 * Anything that is not an IP comes back trimmed, for the caller to reject.
 */
export function normalizeIp(address: string | undefined): string {
  if (!address) return "unknown";
  let ip = address.trim();
  if (ip.startsWith("[") && ip.includes("]")) ip = ip.slice(1, ip.indexOf("]"));
  const withPort = /^(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}$/.exec(ip);
  if (withPort) ip = withPort[1]!;
  const zone = ip.indexOf("%");
  if (zone > 0 && isIP(ip.slice(0, zone)) === 6) ip = ip.slice(0, zone);
  if (isIP(ip) !== 6) return ip;
  // the WHATWG URL parser prints IPv6 canonically: lower case, zeros compressed, mapped IPv4 in hex
  const canonical = new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (!mapped) return canonical;
  const high = parseInt(mapped[1]!, 16);
  const low = parseInt(mapped[2]!, 16);
  return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
}

/** `peerAddress` and `headers` come from `socket.handshake`, which outlives the HTTP request. */
export function clientIp(peerAddress: string | undefined, headers: IncomingHttpHeaders, trustProxy: number): string {
  const peer = normalizeIp(peerAddress);
  if (trustProxy <= 0) return peer;
  const header = headers["x-forwarded-for"];
  const raw = Array.isArray(header) ? header.join(",") : header;
  if (!raw) return peer;
  const hops = raw.split(",").map((hop) => hop.trim()).filter(Boolean);
  // hops the trusted proxies appended, read from the right; fewer hops than proxies: take the left-most
  const candidate = hops[Math.max(0, hops.length - trustProxy)];
  const ip = normalizeIp(candidate);
  return isIP(ip) ? ip : peer;
}

/** The eight 16-bit groups of a canonical IPv6 address (as `normalizeIp` prints it). */
function ipv6Groups(ip: string): number[] {
  const [head = "", tail] = ip.split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const middle = tail === undefined ? [] : Array<string>(8 - left.length - right.length).fill("0");
  return [...left, ...middle, ...right].map((group) => parseInt(group, 16));
}

/**
 * The key per-IP limits count a client under: an IPv4 address as it is, an IPv6 address as its
 * network of `prefixLength` bits (IPV6_PREFIX_LENGTH): a customer usually holds a whole /64, so
 * counting single IPv6 addresses would let one host open 2^64 "clients".
 */
export function limitKey(ip: string, prefixLength: number): string {
  if (isIP(ip) !== 6 || prefixLength >= 128) return ip;
  const groups = ipv6Groups(ip).map((group, i) => {
    const keep = Math.min(16, Math.max(0, prefixLength - i * 16));
    return keep === 0 ? 0 : group & ((0xffff << (16 - keep)) & 0xffff);
  });
  const network = new URL(`http://[${groups.map((g) => g.toString(16)).join(":")}]/`).hostname.slice(1, -1);
  return `${network}/${prefixLength}`;
}
