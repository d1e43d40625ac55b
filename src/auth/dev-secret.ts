/**
 * Embedded mode needs no configuration: the first start writes a random HS256 secret under
 * DATA_DIR, and `realtime-gateway token` reads the same file, so minted tokens just work.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

export function devSecretPath(dataDir: string): string {
  return join(dataDir, "jwt-secret");
}

export async function loadDevSecret(dataDir: string): Promise<string | undefined> {
  try {
    const secret = (await readFile(devSecretPath(dataDir), "utf8")).trim();
    return secret.length >= 16 ? secret : undefined;
  } catch {
    return undefined;
  }
}

export async function loadOrCreateDevSecret(dataDir: string): Promise<string> {
  const existing = await loadDevSecret(dataDir);
  if (existing) return existing;
  await mkdir(dataDir, { recursive: true });
  const secret = randomBytes(32).toString("hex");
  await writeFile(devSecretPath(dataDir), `${secret}\n`, { mode: 0o600, flag: "w" });
  return secret;
}
