/**
 * MAX_BUFFERED_BYTES_PER_SOCKET: engine.io queues output per socket without a bound, so a client
 * that stops reading (a phone in a tunnel, a stalled tab, a hostile client) would grow the
 * instance's memory with every update of its tickets.
 *
 * Unsent output = what waits in engine.io's write buffer (packets not yet handed to the transport:
 * on a busy WebSocket they pile up there while the previous write is pending; on long-polling
 * until the next GET) + what the WebSocket holds (`ws.bufferedAmount`: written but not yet taken
 * by the kernel). Text is counted in characters, binary in bytes.
 *
 * The listener emits events in batches (500 at a time), so for a moment every subscriber of a busy
 * ticket has more than the limit unsent, however fast it reads. The limit therefore decides at a
 * check one CHECK_MS after the output first passed it: a socket still over the limit that took
 * less than the limit's worth of bytes since then (it reads slower than MAX_BUFFERED_BYTES_PER_SOCKET
 * per CHECK_MS) is a slow consumer; one that reads faster gets another CHECK_MS to catch up. A
 * backlog over CEILING times the limit is dropped at once. Per packet this is O(1) arithmetic; the only timer
 * belongs to a socket that is over the limit, and lives at most until it is dropped or caught up.
 */
import type { GatewaySocket } from "../socket/context.js";

type EngineSocket = GatewaySocket["conn"];

/** how long a socket over the limit has to show it reads */
export const CHECK_MS = 1000;
/** a backlog of this many times the limit is dropped even from a socket that reads */
export const CEILING = 16;

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

/** Call `onOverflow` once when the session is a slow consumer for `limit` (0: never). */
export function watchOutput(conn: EngineSocket, limit: number, onOverflow: (buffered: number) => void): void {
  if (limit <= 0) return;
  // bytes in engine.io's write buffer: grows per packet, handed to the transport as a whole on flush
  let queued = 0;
  // bytes ever written to this session, to tell how much it took between two checks
  let written = 0;
  let timer: NodeJS.Timeout | undefined;
  let done = false;
  const unsent = () => queued + transportBuffered(conn);

  const trip = (buffered: number) => {
    done = true;
    clearTimeout(timer);
    onOverflow(buffered);
  };
  const arm = (backlog: number, writtenAt: number) => {
    timer = setTimeout(() => {
      timer = undefined;
      if (done) return;
      const now = unsent();
      if (now <= limit) return;
      const taken = backlog + (written - writtenAt) - now;
      if (taken < limit || now > CEILING * limit) return trip(now);
      arm(now, written);
    }, CHECK_MS);
  };

  conn.on("packetCreate", (packet: Packet) => {
    if (done) return;
    const size = sizeOf(packet.data);
    queued += size;
    written += size;
    const now = unsent();
    if (timer === undefined) {
      if (now > limit) arm(now, written);
    } else if (now > CEILING * limit) {
      // no second to wait for: memory is what this bounds
      trip(now);
    }
  });
  conn.on("flush", () => {
    queued = 0;
  });
  conn.once("close", () => {
    done = true;
    clearTimeout(timer);
  });
}
