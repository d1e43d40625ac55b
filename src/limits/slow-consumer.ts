/**
 * MAX_BUFFERED_BYTES_PER_SOCKET: engine.io queues output per socket without a bound, so a client
 * that stops reading (a phone in a tunnel, a stalled tab, a hostile client) would grow the
 * instance's memory with every update of its tickets.
 *
 * Unsent output = what waits in engine.io's write buffer (packets not yet handed to the transport:
 * on a stalled WebSocket they pile up there while the previous write is pending; on long-polling
 * until the next GET) + what the WebSocket holds (`ws.bufferedAmount`: written but not yet taken
 * by the kernel). It is checked on each packet written, at O(1): no per-socket timer, no walk over
 * the buffer. Text is counted in characters, binary in bytes.
 */
import type { GatewaySocket } from "../socket/context.js";

type EngineSocket = GatewaySocket["conn"];

interface Packet {
  data?: unknown;
}

function sizeOf(data: unknown): number {
  if (typeof data === "string") return data.length;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data.byteLength;
  return 0;
}

/** bytes the WebSocket under the session still holds; 0 on long-polling */
function transportBuffered(conn: EngineSocket): number {
  const socket = (conn.transport as unknown as { socket?: { bufferedAmount?: unknown } }).socket;
  return typeof socket?.bufferedAmount === "number" ? socket.bufferedAmount : 0;
}

/** Call `onOverflow` once when the session's unsent output passes `limit` (0: never). */
export function watchOutput(conn: EngineSocket, limit: number, onOverflow: (buffered: number) => void): void {
  if (limit <= 0) return;
  // bytes in engine.io's write buffer: grows per packet, handed to the transport as a whole on flush
  let queued = 0;
  let tripped = false;
  conn.on("packetCreate", (packet: Packet) => {
    if (tripped) return;
    queued += sizeOf(packet.data);
    const buffered = queued + transportBuffered(conn);
    if (buffered <= limit) return;
    tripped = true;
    onOverflow(buffered);
  });
  conn.on("flush", () => {
    queued = 0;
  });
}
