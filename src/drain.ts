/**
 * Drain: close every client's transport (not a server-side disconnect, which a stock
 * socket.io-client would not retry), spread over a window with jitter so the fleet reconnects to
 * the other instances gradually; then wait for the sockets to go, up to a deadline.
 */
import type { GatewayServer } from "./socket/context.js";
import { sleep } from "./lifecycle.js";

export interface DrainOptions {
  /** closes are spread uniformly over this window */
  spreadMs: number;
  /** give up waiting for sockets after this long */
  deadlineMs: number;
}

export async function drainSockets(io: GatewayServer, { spreadMs, deadlineMs }: DrainOptions): Promise<number> {
  const sockets = [...io.of("/").sockets.values()];
  const timers = sockets.map((socket) => setTimeout(() => socket.conn.close(), Math.random() * spreadMs));
  const deadline = Date.now() + deadlineMs;
  while (io.of("/").sockets.size > 0 && Date.now() < deadline) await sleep(50);
  for (const timer of timers) clearTimeout(timer);
  return io.of("/").sockets.size;
}
