/**
 * The optional `@socket.io/admin-ui` namespace (`/admin`), on only when ADMIN_UI_PASSWORD is set.
 *
 * Basic auth, user `admin`; the password may be given in clear or as a bcrypt hash ($2a$/$2b$/$2y$).
 * The UI talks to this namespace from https://admin.socket.io (add that origin to CORS_ORIGINS) or
 * a self-hosted copy, and sees every instance through the adapter. It is read-only: the UI's
 * join/leave/emit/disconnect actions would bypass the ticket permissions the gateway enforces.
 * Production mode: aggregated counters only, no per-event hooks on client sockets.
 */
import bcrypt from "bcryptjs";
import { InMemoryStore, instrument } from "@socket.io/admin-ui";
import type { Server } from "socket.io";
import type { GatewayServer } from "../socket/context.js";
import { adminLoginGuard, type AdminLoginOptions } from "./admin-login.js";

export const ADMIN_UI_USERNAME = "admin";
export const ADMIN_UI_NAMESPACE = "/admin";

const BCRYPT_HASH = /^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$/;

/**
 * Mount the admin namespace; returns the function that stops its stats timer. Its logins go
 * through `adminLoginGuard` first (throttled per IP, failures logged without the password).
 */
export function mountAdminUi(
  io: GatewayServer,
  password: string,
  serverId: string,
  login: Omit<AdminLoginOptions, "username" | "hash" | "store">,
): () => void {
  const hash = BCRYPT_HASH.test(password) ? password : bcrypt.hashSync(password, 10);
  const store = new InMemoryStore();
  // registered before instrument() adds its own middleware to the same namespace, so it runs first
  io.of(ADMIN_UI_NAMESPACE).use(adminLoginGuard({ ...login, username: ADMIN_UI_USERNAME, hash, store }));
  // instrument() starts a 2 s stats interval it never clears; capture it so stop() can. It is
  // created synchronously inside instrument(), so nothing else is caught by this window.
  const timers: NodeJS.Timeout[] = [];
  const original = globalThis.setInterval;
  globalThis.setInterval = ((...args: Parameters<typeof setInterval>) => {
    const timer = original(...args);
    timers.push(timer);
    return timer;
  }) as typeof setInterval;
  try {
    instrument(io as unknown as Server, {
      namespaceName: ADMIN_UI_NAMESPACE,
      auth: { type: "basic", username: ADMIN_UI_USERNAME, password: hash },
      store,
      readonly: true,
      mode: "production",
      serverId,
    });
  } finally {
    globalThis.setInterval = original;
  }
  return () => {
    for (const timer of timers) clearInterval(timer);
  };
}
