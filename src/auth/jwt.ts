/**
 * JWT verification (jose): an HS256 secret, a PEM public key (RS256/ES256/EdDSA) or a JWKS URL.
 * `exp` is required and enforced; `iss`/`aud` are checked when configured.
 */
import { createPublicKey, type KeyObject } from "node:crypto";
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

export function createTokenVerifier(config: JwtConfig): TokenVerifier {
  const { key, algorithms } = keyFor(config);
  return {
    async verify(token) {
      if (typeof token !== "string" || token.length === 0) throw new InvalidTokenError("missing token");
      if (token.length > MAX_TOKEN_LENGTH) throw new InvalidTokenError("token too long");
      let payload: unknown;
      try {
        const options = { algorithms, issuer: config.issuer, audience: config.audience, requiredClaims: ["exp", "sub"] };
        // jose overloads differ for a key and a key-resolving function; both are valid here
        const result =
          typeof key === "function" ? await jwtVerify(token, key, options) : await jwtVerify(token, key, options);
        payload = result.payload;
      } catch (error) {
        throw new InvalidTokenError(describe(error));
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
