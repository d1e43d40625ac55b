/**
 * JWT verification (jose): an HS256 secret, a PEM public key (RS256/ES256/EdDSA) or a JWKS URL.
 * `exp` is required and enforced; `iss`/`aud` are checked when configured.
 */
import { createHmac, createPublicKey, createSecretKey, timingSafeEqual, type KeyObject } from "node:crypto";
import { createRemoteJWKSet, errors, jwtVerify, SignJWT, type JWTVerifyGetKey } from "jose";
import { z } from "zod";
import type { JwtConfig } from "../config.js";
import type { Claims } from "../protocol.js";

export interface TokenVerifier {
  /** resolves the claims, or rejects with an `InvalidTokenError` whose message is safe to log */
  verify(token: unknown): Promise<Claims>;
}

export class InvalidTokenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InvalidTokenError";
  }
}

const MAX_TOKEN_LENGTH = 8192;

/**
 * A ticket id in a `tickets` claim: a string, or a number as many identity providers emit ids
 * (`[42]`). Both name the same ticket: 42 and "42" are the ticket "42". Only safe integers, so the
 * number has one spelling (no 1e21, no 0.1 + 0.2).
 */
const ticketClaim = z.union([
  z.string().min(1).max(256),
  z
    .number()
    .int()
    .refine((n) => Number.isSafeInteger(n), "not a safe integer")
    .transform((n) => String(n)),
]);

const claimsSchema = z.object({
  sub: z.string().min(1).max(256),
  name: z.string().max(256).optional(),
  role: z.string().max(64).optional(),
  tickets: z.array(ticketClaim).max(10_000).optional(),
  exp: z.number(),
  iat: z.number().optional(),
});

/** the protected header members a fast-path token may carry; anything else goes through jose */
const PLAIN_HEADER = new Set(["alg", "typ", "kid"]);
const BASE64URL = /^[A-Za-z0-9_-]+$/;
/** base64url without padding: a length of 4n + 1 is not an encoding jose would accept */
const wellFormed = (part: string) => part.length % 4 !== 1 && BASE64URL.test(part);
const utf8 = new TextDecoder("utf-8", { fatal: true });

function decodeJson(part: string): unknown {
  try {
    return JSON.parse(utf8.decode(Buffer.from(part, "base64url")));
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * HS256 without WebCrypto: jose verifies through crypto.subtle, an async job per token that cost
 * ~0.5 ms of the event loop per handshake here (half a bare Socket.IO connect). This path only ever
 * *accepts*: a token whose header is plain (alg HS256, typ, kid), whose signature is the canonical
 * HMAC of its first two parts and whose claims pass the checks jose would make with our options
 * (exp and sub present, exp in the future, nbf reached, iat/nbf/exp numbers, iss and aud when
 * configured). Every other token, and every rejection, goes to jose, which gives the answer and its
 * reason as before.
 */
function hs256FastPath(secret: KeyObject, config: JwtConfig): (token: string) => Record<string, unknown> | undefined {
  const audiences = config.audience === undefined ? undefined : [config.audience].flat();
  const issuers = config.issuer === undefined ? undefined : [config.issuer].flat();
  return (token) => {
    const first = token.indexOf(".");
    const second = token.indexOf(".", first + 1);
    if (first <= 0 || second <= first + 1 || token.indexOf(".", second + 1) !== -1) return undefined;
    const header = token.slice(0, first);
    const body = token.slice(first + 1, second);
    const signature = token.slice(second + 1);
    if (!wellFormed(header) || !wellFormed(body) || !wellFormed(signature)) return undefined;
    const expected = createHmac("sha256", secret).update(token.slice(0, second)).digest("base64url");
    if (expected.length !== signature.length || !timingSafeEqual(Buffer.from(expected), Buffer.from(signature))) return undefined;
    const protectedHeader = decodeJson(header);
    if (!isObject(protectedHeader) || protectedHeader.alg !== "HS256") return undefined;
    for (const name of Object.keys(protectedHeader)) if (!PLAIN_HEADER.has(name)) return undefined;
    const claims = decodeJson(body);
    if (!isObject(claims)) return undefined;
    const now = Math.floor(Date.now() / 1000);
    const { exp, nbf, iat, iss, aud } = claims;
    if (typeof exp !== "number" || !Number.isFinite(exp) || exp <= now) return undefined;
    if (!Object.hasOwn(claims, "sub")) return undefined;
    if (nbf !== undefined && (typeof nbf !== "number" || nbf > now)) return undefined;
    if (iat !== undefined && typeof iat !== "number") return undefined;
    if (issuers && !issuers.includes(iss as string)) return undefined;
    if (audiences && !(typeof aud === "string" ? audiences.includes(aud) : Array.isArray(aud) && audiences.some((a) => aud.includes(a)))) return undefined;
    return claims;
  };
}

function keyFor(config: JwtConfig): { key: Uint8Array | KeyObject | JWTVerifyGetKey; algorithms: string[] } {
  if (config.secret !== undefined) return { key: new TextEncoder().encode(config.secret), algorithms: ["HS256"] };
  if (config.publicKey !== undefined) {
    const key = createPublicKey(config.publicKey);
    // the curve fixes the ES algorithm; allowing only ES256 would refuse every token of a P-384 key
    const curve = key.asymmetricKeyDetails?.namedCurve;
    const ec = curve === "secp384r1" ? "ES384" : curve === "secp521r1" ? "ES512" : "ES256";
    const algorithms = key.asymmetricKeyType === "rsa" ? ["RS256"] : key.asymmetricKeyType === "ec" ? [ec] : ["EdDSA"];
    return { key, algorithms };
  }
  if (config.jwksUrl !== undefined) {
    const jwks = createRemoteJWKSet(new URL(config.jwksUrl), { timeoutDuration: 5000, cooldownDuration: 30_000 });
    return { key: jwks, algorithms: ["RS256", "ES256", "EdDSA", "PS256"] };
  }
  throw new Error("no JWT key configured");
}

/** `fastPath: false` verifies every token through jose (the reference the tests compare against) */
export function createTokenVerifier(config: JwtConfig, { fastPath = true }: { fastPath?: boolean } = {}): TokenVerifier {
  const { key, algorithms } = keyFor(config);
  const fast = fastPath && config.secret !== undefined ? hs256FastPath(createSecretKey(Buffer.from(config.secret, "utf8")), config) : undefined;
  return {
    async verify(token) {
      if (typeof token !== "string" || token.length === 0) throw new InvalidTokenError("missing token");
      if (token.length > MAX_TOKEN_LENGTH) throw new InvalidTokenError("token too long");
      let payload: unknown = fast?.(token);
      if (payload === undefined) {
        try {
          const options = { algorithms, issuer: config.issuer, audience: config.audience, requiredClaims: ["exp", "sub"] };
          // jose overloads differ for a key and a key-resolving function; both are valid here
          const result =
            typeof key === "function" ? await jwtVerify(token, key, options) : await jwtVerify(token, key, options);
          payload = result.payload;
        } catch (error) {
          throw new InvalidTokenError(describe(error));
        }
      }
      const parsed = claimsSchema.safeParse(payload);
      if (!parsed.success) throw new InvalidTokenError(`bad claims: ${parsed.error.issues[0]?.path.join(".")}`);
      const { sub, name, role, tickets, exp, iat } = parsed.data;
      return { sub, name: name ?? sub, role: role ?? "agent", tickets: tickets === undefined ? [] : [...new Set(tickets)], exp, iat };
    },
  };
}

function describe(error: unknown): string {
  if (error instanceof errors.JWTExpired) return "token expired";
  if (error instanceof errors.JWTClaimValidationFailed) return `claim ${error.claim} invalid (${error.reason})`;
  if (error instanceof errors.JWSSignatureVerificationFailed) return "bad signature";
  if (error instanceof errors.JOSEAlgNotAllowed) return "algorithm not allowed";
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid) return "malformed token";
  if (error instanceof errors.JWKSNoMatchingKey) return "no matching key in JWKS";
  if (error instanceof errors.JOSEError) return error.code;
  return "token could not be verified";
}

export interface MintOptions {
  sub: string;
  name?: string;
  role?: string;
  tickets?: string[];
  ttlSeconds: number;
  issuer?: string;
  audience?: string;
}

/** HS256 tokens for development, tests and the demo. */
export async function mintToken(secret: string, options: MintOptions): Promise<string> {
  const claims: Record<string, unknown> = { role: options.role ?? "agent", tickets: options.tickets ?? ["*"] };
  if (options.name !== undefined) claims.name = options.name;
  let jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(options.sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + options.ttlSeconds);
  if (options.issuer) jwt = jwt.setIssuer(options.issuer);
  if (options.audience) jwt = jwt.setAudience(options.audience);
  return jwt.sign(new TextEncoder().encode(secret));
}

/** A subscriber may see a ticket when its claim lists it or holds "*". */
export function mayAccess(claims: Claims, ticketId: string): boolean {
  return claims.tickets.includes("*") || claims.tickets.includes(ticketId);
}
