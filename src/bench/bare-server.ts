/**
 * The baseline: bare Socket.IO + @socket.io/redis-adapter, no auth, no database. Clients join a
 * room with `ticket:subscribe`; the bench's driver sends `bench:publish` on one socket and the
 * server broadcasts it into the room, across instances through Redis: the fan-out the gateway
 * adds its guarantees on top of. Run as a child process by the bench (`PORT`, `REDIS_URL`).
 */
import { createServer } from "node:http";
import { createAdapter } from "@socket.io/redis-adapter";
import { Redis } from "ioredis";
import { Server } from "socket.io";

const port = Number(process.env.PORT ?? 0);
const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const key = process.env.REDIS_PREFIX ?? "bench-bare";

const pub = new Redis(redisUrl, { maxRetriesPerRequest: 2, connectTimeout: 5000 });
const sub = pub.duplicate();
for (const client of [pub, sub]) client.on("error", (error) => process.stderr.write(`redis: ${error.message}\n`));

const http = createServer();
const io = new Server(http, { adapter: createAdapter(pub, sub, { key }), transports: ["websocket"], serveClient: false });

io.on("connection", (socket) => {
  socket.on("ticket:subscribe", (request: { ticketId?: unknown }, ack?: (res: unknown) => void) => {
    if (typeof request?.ticketId !== "string") return ack?.({ ok: false, error: { code: "INVALID_PAYLOAD", message: "ticketId" } });
    void socket.join(`ticket:${request.ticketId}`);
    ack?.({ ok: true, ticketId: request.ticketId, seq: 0, missed: [], recovered: true, viewers: [] });
  });
  socket.on("bench:publish", (update: { ticketId: string; seq: number; data: unknown }, ack?: (res: unknown) => void) => {
    io.to(`ticket:${update.ticketId}`).emit("ticket:update", {
      ticketId: update.ticketId,
      seq: update.seq,
      id: null,
      type: "bench",
      data: update.data,
      at: new Date().toISOString(),
    });
    ack?.({ ok: true });
  });
});

http.listen(port, "127.0.0.1", () => {
  const address = http.address() as { port: number };
  process.stdout.write(`${JSON.stringify({ msg: "bare started", port: address.port })}\n`);
});

const stop = () => {
  io.close();
  pub.disconnect();
  sub.disconnect();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
