/**
 * Handshake authentication: every way a token can be wrong ends in `connect_error` with
 * `err.data = { code: "UNAUTHORIZED", status: 401 }` exactly, and every supported way of being
 * right (auth.token, Authorization: Bearer, HS256, RS256, ES256, JWKS) connects.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { expect } from "chai";
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from "jose";
import { connect, connectError, createSocket, eventually, nextEvent, quietPeriod, request, token } from "./support/client.js";
import { onCleanup } from "./support/cleanup.js";
import { startCluster } from "./support/cluster.js";
import { TEST_JWT_SECRET } from "./support/env.js";

const UNAUTHORIZED = { code: "UNAUTHORIZED", status: 401 };
const now = () => Math.floor(Date.now() / 1000);
const secretKey = (secret = TEST_JWT_SECRET) => new TextEncoder().encode(secret);

interface SignOptions {
  alg?: string;
  kid?: string;
  key?: CryptoKey | Uint8Array;
  /** claims to merge over the defaults; `undefined` values remove the claim */
  claims?: JWTPayload;
}

/** A token with full control over every claim (the support helper always sets exp). */
async function sign(options: SignOptions = {}): Promise<string> {
  const claims: JWTPayload = { sub: "alice", tickets: ["*"], iat: now(), exp: now() + 3600, ...options.claims };
  for (const [name, value] of Object.entries(claims)) if (value === undefined) delete claims[name];
  return new SignJWT(claims)
    .setProtectedHeader({ alg: options.alg ?? "HS256", typ: "JWT", ...(options.kid ? { kid: options.kid } : {}) })
    .sign(options.key ?? secretKey());
}

/** The handshake is rejected with exactly `{ code: "UNAUTHORIZED", status: 401 }`. */
async function expectUnauthorized(url: string, options: Parameters<typeof connectError>[1]): Promise<void> {
  const error = await connectError(url, options);
  expect(error.data, `connect_error ${error.message}`).to.deep.equal(UNAUTHORIZED);
}

/** A local JWKS endpoint, as an identity provider would serve it. */
async function serveJwks(keys: object[]): Promise<string> {
  const server: Server = createServer((req, res) => {
    if (req.url === "/.well-known/jwks.json") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ keys }));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  onCleanup("jwks server", () => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
}

describe("handshake authentication", () => {
  describe("with an HS256 secret", () => {
    it("rejects missing, malformed, badly signed, expired and exp-less tokens with UNAUTHORIZED (401)", async () => {
      const { urls } = await startCluster(1);
      const url = urls[0]!;
      const cases: Array<[string, Parameters<typeof connectError>[1]]> = [
        ["no auth at all", { token: null }],
        ["an empty token", { token: "" }],
        ["a token that is not a string", { auth: { token: 12345 } }],
        ["a token that is not a JWT", { token: "not-a-jwt" }],
        ["a JWT with a garbage payload", { token: "eyJhbGciOiJIUzI1NiJ9.%%%.abc" }],
        ["a token signed with another secret", { token: await sign({ key: secretKey("another-secret-0123456789") }) }],
        ["a token whose signature was altered", { token: (await sign()).replace(/.{4}$/, "AAAA") }],
        ["an unsigned (alg none) token", { token: `${b64({ alg: "none" })}.${b64({ sub: "alice", exp: now() + 60 })}.` }],
        ["an expired token", { token: await sign({ claims: { iat: now() - 120, exp: now() - 60 } }) }],
        ["a token without exp", { token: await sign({ claims: { exp: undefined } }) }],
        ["a token without sub", { token: await sign({ claims: { sub: undefined } }) }],
        ["a token whose tickets claim is not a list", { token: await sign({ claims: { tickets: "*" } }) }],
        ["a huge token", { token: "a".repeat(9000) }],
      ];
      for (const [what, options] of cases) {
        const error = await connectError(url, options);
        expect(error.data, `${what}: ${error.message}`).to.deep.equal(UNAUTHORIZED);
      }
      // the control: the same gateway accepts a good token
      const socket = await connect(url, { token: await sign() });
      expect(socket.connected).to.equal(true);
    });

    it("accepts a token in an Authorization: Bearer header (non-browser clients)", async () => {
      const { urls } = await startCluster(1);
      const jwt = await token({ sub: "bob", tickets: ["7"] });
      const socket = await connect(urls[0]!, { token: null, extraHeaders: { authorization: `Bearer ${jwt}` } });
      expect(await request(socket, "ticket:subscribe", { ticketId: "7" })).to.include({ ok: true, ticketId: "7" });
      await expectUnauthorized(urls[0]!, { token: null, extraHeaders: { authorization: "Bearer not-a-jwt" } });
      await expectUnauthorized(urls[0]!, { token: null, extraHeaders: { authorization: `Basic ${jwt}` } });
    });

    it("accepts numbers in the tickets claim as the same ids as strings (42 and \"42\")", async () => {
      const cluster = await startCluster(1, { mode: "single" });
      const url = cluster.urls[0]!;
      const socket = await connect(url, { token: await sign({ claims: { tickets: [42, "7", 42, "42"] as never } }) });
      for (const ticketId of ["42", "7"]) expect(await request(socket, "ticket:subscribe", { ticketId })).to.include({ ok: true, ticketId });
      const denied = await request(socket, "ticket:subscribe", { ticketId: "8" });
      expect(denied).to.deep.include({ ok: false });
      expect((denied as { error: { code: string } }).error.code).to.equal("FORBIDDEN");
      expect([...cluster.gateways[0]!.io.of("/").sockets.values()][0]!.data.claims.tickets).to.deep.equal(["42", "7"]);
      // a number with more than one spelling, or none, is not an id
      for (const tickets of [[1.5], [2 ** 60], [true], [null], [""]]) {
        await expectUnauthorized(url, { token: await sign({ claims: { tickets: tickets as never } }) });
      }
    });

    it("checks the issuer and audience when JWT_ISSUER and JWT_AUDIENCE are set", async () => {
      const { urls } = await startCluster(1, { env: { JWT_ISSUER: "https://id.example.com", JWT_AUDIENCE: "helpdesk" } });
      const url = urls[0]!;
      const good = { iss: "https://id.example.com", aud: "helpdesk" };
      await expectUnauthorized(url, { token: await sign({ claims: { ...good, iss: "https://evil.example.com" } }) });
      await expectUnauthorized(url, { token: await sign({ claims: { ...good, aud: "billing" } }) });
      await expectUnauthorized(url, { token: await sign({ claims: { aud: "helpdesk" } }) });
      await expectUnauthorized(url, { token: await sign({ claims: { iss: "https://id.example.com" } }) });
      const socket = await connect(url, { token: await sign({ claims: good }) });
      expect(socket.connected).to.equal(true);
    });

    it("ends the connection when the token expires: auth:expired, then an io server disconnect", async () => {
      const { urls } = await startCluster(1);
      const socket = await connect(urls[0]!, { ttlSeconds: 2 });
      const reasons: string[] = [];
      socket.on("disconnect", (reason) => reasons.push(reason));
      const expired = await nextEvent(socket, "auth:expired", () => true, 10_000);
      expect(Date.parse(expired.expiredAt)).to.be.at.most(Date.now());
      await eventually(() => reasons.length > 0, "the disconnect after auth:expired");
      expect(reasons).to.deep.equal(["io server disconnect"]);
      expect(socket.connected).to.equal(false);
    });
  });

  describe("with a PEM public key", () => {
    for (const alg of ["RS256", "ES256", "ES384"] as const) {
      it(`accepts ${alg} tokens signed by the matching private key, and nothing else`, async () => {
        const { publicKey, privateKey } = await generateKeyPair(alg);
        const other = await generateKeyPair(alg);
        const { urls } = await startCluster(1, { env: { JWT_SECRET: "", JWT_PUBLIC_KEY: await exportSPKI(publicKey) } });
        const url = urls[0]!;
        const socket = await connect(url, { token: await sign({ alg, key: privateKey }) });
        expect(await request(socket, "ticket:subscribe", { ticketId: "1" })).to.include({ ok: true });
        await expectUnauthorized(url, { token: await sign({ alg, key: other.privateKey }) });
        await expectUnauthorized(url, { token: await sign({ alg, key: privateKey, claims: { exp: now() - 10 } }) });
        // an HS256 token made with the test secret must not pass as an asymmetric one
        await expectUnauthorized(url, { token: await sign() });
      });
    }

    it("also accepts the PEM with escaped newlines (how it arrives from a one-line env file)", async () => {
      const { publicKey, privateKey } = await generateKeyPair("ES256");
      const oneLine = (await exportSPKI(publicKey)).trim().replace(/\n/g, "\\n");
      const { urls } = await startCluster(1, { env: { JWT_SECRET: "", JWT_PUBLIC_KEY: oneLine } });
      const socket = await connect(urls[0]!, { token: await sign({ alg: "ES256", key: privateKey }) });
      expect(socket.connected).to.equal(true);
    });
  });

  describe("with a JWKS URL", () => {
    it("verifies tokens against the key set named by kid, and rejects unknown keys", async () => {
      const rsa = await generateKeyPair("RS256");
      const ec = await generateKeyPair("ES256");
      const stranger = await generateKeyPair("RS256");
      const jwks = await serveJwks([
        { ...(await exportJWK(rsa.publicKey)), kid: "rsa-1", alg: "RS256", use: "sig" },
        { ...(await exportJWK(ec.publicKey)), kid: "ec-1", alg: "ES256", use: "sig" },
      ]);
      const { urls } = await startCluster(1, { env: { JWT_SECRET: "", JWT_JWKS_URL: jwks } });
      const url = urls[0]!;
      const viaRsa = await connect(url, { token: await sign({ alg: "RS256", kid: "rsa-1", key: rsa.privateKey }) });
      const viaEc = await connect(url, { token: await sign({ alg: "ES256", kid: "ec-1", key: ec.privateKey }) });
      expect(viaRsa.connected && viaEc.connected).to.equal(true);
      await expectUnauthorized(url, { token: await sign({ alg: "RS256", kid: "rsa-1", key: stranger.privateKey }) });
      await expectUnauthorized(url, { token: await sign({ alg: "RS256", kid: "unknown", key: stranger.privateKey }) });
      await expectUnauthorized(url, { token: await sign() });
    });
  });

  it("reports the rejection through createSocket's connect_error without retrying forever", async () => {
    // socket.io-client stops auto-reconnecting after a middleware rejection (err.data set)
    const { urls } = await startCluster(1);
    const socket = createSocket(urls[0]!, { token: "bad", reconnection: true });
    const errors: unknown[] = [];
    socket.on("connect_error", (error) => errors.push((error as { data?: unknown }).data));
    socket.connect();
    await eventually(() => errors.length > 0, "the connect_error");
    await quietPeriod(1500);
    expect(errors).to.deep.equal([UNAUTHORIZED]);
    expect(socket.active).to.equal(false);
  });
});

function b64(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}
