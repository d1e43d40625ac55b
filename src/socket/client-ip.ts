/**
 * The client's IP for per-IP limits. With TRUST_PROXY=0 it is the socket's peer address; with
 * TRUST_PROXY=n it is the n-th address from the right of X-Forwarded-For (the hop our n-th proxy
 * saw), so a client cannot choose its own IP by sending the header.
 */
import { isIP } from "node:net";
import type { IncomingHttpHeaders } from "node:http";

export function normalizeIp(address: string | undefined): string {
  if (!address) return "unknown";
  let ip = address.trim();
  if (ip.startsWith("[") && ip.includes("]")) ip = ip.slice(1, ip.indexOf("]"));
  // IPv4-mapped IPv6 (::ffff:1.2.3.4) is the IPv4 client
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1]!;
  // strip an IPv4 port ("1.2.3.4:5678") that some proxies append
  const withPort = /^(\d+\.\d+\.\d+\.\d+):\d+$/.exec(ip);
  if (withPort) return withPort[1]!;
  return isIP(ip) === 6 ? ip.toLowerCase() : ip;
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
