/**
 * Reading a JWT's `exp` on the client, without verifying it: the client only needs to know when
 * to ask for a new token; the gateway is the one that checks signatures.
 */

function base64UrlDecode(segment: string): string {
  const base64 = segment.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(segment.length / 4) * 4, "=");
  // atob is global in browsers and in Node >= 16; it yields Latin-1 "binary" text
  const binary = atob(base64);
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

/** The token's `exp` in milliseconds since the epoch, or undefined when it has none (or is not a JWT). */
export function tokenExpiry(token: string): number | undefined {
  const payload = token.split(".")[1];
  if (payload === undefined) return undefined;
  try {
    const claims: unknown = JSON.parse(base64UrlDecode(payload));
    const exp = typeof claims === "object" && claims !== null ? (claims as { exp?: unknown }).exp : undefined;
    return typeof exp === "number" && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * When to refresh: `marginMs` before expiry, but with a margin of at most a third of the remaining
 * life, so a short-lived token is not refreshed the moment it arrives (and again, and again).
 */
export function refreshDelay(expiresAtMs: number, nowMs: number, marginMs: number): number {
  const left = expiresAtMs - nowMs;
  return Math.max(0, left - Math.min(marginMs, left / 3));
}
