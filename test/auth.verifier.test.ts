/**
 * The HS256 fast path of the token verifier (node:crypto instead of jose's WebCrypto job) only
 * ever accepts what jose accepts, with the same claims; every other token gets jose's answer.
 * Each case runs through the verifier and through a jose-only reference, and must agree.
 */
import { createHmac } from "node:crypto";
import { expect } from "chai";
import { SignJWT, type JWTPayload } from "jose";
import { createTokenVerifier, type TokenVerifier } from "../src/auth/jwt.js";
import type { JwtConfig } from "../src/config.js";

const SECRET = "verifier-test-secret-0123456789abcdef";
const now = () => Math.floor(Date.now() / 1000);
const b64 = (value: unknown) => Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");

/** a token with any header and payload, signed with HMAC-SHA256 over exactly what it carries */
function raw(header: unknown, payload: unknown, secret = SECRET): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
}

function jose(claims: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: "HS256", ...header }).sign(new TextEncoder().encode(SECRET));
}

async function outcome(verifier: TokenVerifier, token: unknown): Promise<unknown> {
  try {
    return { ok: await verifier.verify(token) };
  } catch (error) {
    return { error: (error as Error).message };
  }
}

function cases(): Array<[string, () => Promise<string> | string]> {
  const base = () => ({ sub: "alice", tickets: ["1", 2], iat: now(), exp: now() + 600 });
  return [
    ["a valid token", () => jose(base())],
    ["a valid token with typ and kid", () => jose(base(), { typ: "JWT", kid: "k1" })],
    ["no iat", () => jose({ sub: "a", exp: now() + 60 })],
    ["expired", () => jose({ ...base(), exp: now() - 1 })],
    ["expiring this second", () => jose({ ...base(), exp: now() })],
    ["no exp", () => jose({ sub: "a" })],
    ["exp a string", () => raw({ alg: "HS256" }, { sub: "a", exp: String(now() + 60) })],
    ["no sub", () => jose({ exp: now() + 60 })],
    ["nbf in the future", () => jose({ ...base(), nbf: now() + 60 })],
    ["nbf passed", () => jose({ ...base(), nbf: now() - 60 })],
    ["iat a string", () => raw({ alg: "HS256" }, { ...base(), iat: "yesterday" })],
    ["a bad signature", () => raw({ alg: "HS256" }, base(), "another secret")],
    ["a tampered payload", async () => {
      const [h, , s] = (await jose(base())).split(".");
      return `${h}.${b64({ ...base(), sub: "mallory" })}.${s}`;
    }],
    ["alg none", () => `${b64({ alg: "none" })}.${b64(base())}.`],
    ["alg HS384", () => raw({ alg: "HS384" }, base())],
    ["a crit header", () => raw({ alg: "HS256", crit: ["exp"], exp: 1 }, base())],
    ["b64 false", () => raw({ alg: "HS256", crit: ["b64"], b64: false }, base())],
    ["an extra header member", () => raw({ alg: "HS256", jku: "https://example.com/jwks" }, base())],
    ["a header that is an array", () => raw(["HS256"], base())],
    ["a payload that is an array", () => raw({ alg: "HS256" }, [1, 2])],
    ["a payload that is not JSON", () => raw({ alg: "HS256" }, "not json")],
    ["four parts", async () => `${await jose(base())}.x`],
    ["two parts", () => `${b64({ alg: "HS256" })}.${b64(base())}`],
    ["a padded signature", async () => `${await jose(base())}=`],
    ["a 4n+1 header", async () => {
      const token = await jose(base());
      return `${token.split(".")[0]}A.${token.split(".").slice(1).join(".")}`;
    }],
    ["bad claims (sub not a string)", () => jose({ sub: 42 as unknown as string, exp: now() + 60 })],
    ["a tickets claim with a fraction", () => jose({ ...base(), tickets: [1.5] })],
    ["not a string", () => 42 as unknown as string],
    ["an empty string", () => ""],
  ];
}

describe("token verifier: the HS256 fast path agrees with jose", () => {
  for (const [label, config] of [
    ["no issuer or audience", { secret: SECRET }],
    ["issuer and audience configured", { secret: SECRET, issuer: "idp", audience: "gw" }],
  ] as Array<[string, JwtConfig]>) {
    it(`every case, ${label}`, async () => {
      const fast = createTokenVerifier(config);
      const reference = createTokenVerifier(config, { fastPath: false });
      for (const [name, make] of cases()) {
        const token = await make();
        expect(await outcome(fast, token), name).to.deep.equal(await outcome(reference, token));
      }
    });
  }

  it("checks issuer and audience as jose does (string or array aud, wrong iss refused)", async () => {
    const config = { secret: SECRET, issuer: "idp", audience: "gw" };
    const fast = createTokenVerifier(config);
    const reference = createTokenVerifier(config, { fastPath: false });
    const claims = { sub: "a", exp: now() + 60 };
    for (const extra of [{ iss: "idp", aud: "gw" }, { iss: "idp", aud: ["x", "gw"] }, { iss: "idp", aud: ["x"] }, { iss: "other", aud: "gw" }, { aud: "gw" }, { iss: "idp" }]) {
      const token = await jose({ ...claims, ...extra });
      expect(await outcome(fast, token), JSON.stringify(extra)).to.deep.equal(await outcome(reference, token));
    }
    expect(await outcome(fast, await jose({ ...claims, iss: "idp", aud: "gw" }))).to.have.property("ok");
    expect(await outcome(fast, await jose({ ...claims, iss: "other", aud: "gw" }))).to.deep.equal({ error: "claim iss invalid (check_failed)" });
  });

  it("accepts a plain valid HS256 token without a WebCrypto verify", async () => {
    const subtle = globalThis.crypto.subtle;
    const original = subtle.verify;
    let calls = 0;
    subtle.verify = ((...args: Parameters<typeof original>) => {
      calls += 1;
      return original.apply(subtle, args);
    }) as typeof original;
    try {
      const fast = createTokenVerifier({ secret: SECRET });
      const claims = await fast.verify(await jose({ sub: "alice", tickets: ["7"], exp: now() + 60 }));
      expect(claims).to.include({ sub: "alice", name: "alice", role: "agent" });
      expect(calls).to.equal(0);
      await fast.verify(raw({ alg: "HS256" }, { sub: "alice", exp: now() + 60 }, "another secret")).catch(() => undefined);
      expect(calls, "a rejection is jose's to make").to.equal(1);
    } finally {
      subtle.verify = original;
    }
  });
});
