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

/**
 * What one session's watch keeps: a single object per session, read by listeners shared by every
 * session (engine.io calls them with the session as `this`), so watching costs no closures.
 */
class OutputWatch<T> {
  /** bytes in engine.io's write buffer: grows per packet, handed to the transport as a whole on flush */
  queued = 0;
  /** bytes ever written to this session, to tell how much it took between two checks */
  written = 0;
  timer: NodeJS.Timeout | undefined = undefined;
  done = false;

  constructor(
    readonly conn: EngineSocket,
    readonly limit: number,
    readonly owner: T,
    readonly onOverflow: (owner: T, buffered: number) => void,
  ) {}

  unsent(): number {
    return this.queued + transportBuffered(this.conn);
  }

  packet(size: number): void {
    if (this.done) return;
    this.queued += size;
    this.written += size;
    const now = this.unsent();
    if (this.timer === undefined) {
      if (now > this.limit) this.arm(now, this.written);
    } else if (now > CEILING * this.limit) {
      // no second to wait for: memory is what this bounds
      this.trip(now);
    }
  }

  trip(buffered: number): void {
    this.done = true;
    clearTimeout(this.timer);
    this.onOverflow(this.owner, buffered);
  }

  arm(backlog: number, writtenAt: number): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.done) return;
      const now = this.unsent();
      if (now <= this.limit) return;
      const taken = backlog + (this.written - writtenAt) - now;
      if (taken < this.limit || now > CEILING * this.limit) return this.trip(now);
      this.arm(now, this.written);
    }, CHECK_MS);
  }

  close(): void {
    this.done = true;
    clearTimeout(this.timer);
  }
}

const WATCH = Symbol("outputWatch");
type Watched = EngineSocket & { [WATCH]?: OutputWatch<unknown> };

function onPacketCreate(this: Watched, packet: Packet): void {
  this[WATCH]?.packet(sizeOf(packet.data));
}
function onFlush(this: Watched): void {
  const watch = this[WATCH];
  if (watch) watch.queued = 0;
}
/** the session closed: no more checks (called by the session's owner from its own close listener) */
export function stopWatching(conn: EngineSocket): void {
  (conn as Watched)[WATCH]?.close();
}

/**
 * Call `onOverflow(owner, buffered)` once when the session is a slow consumer for `limit` (0: never).
 * Pass one `onOverflow` for every session (and the session's record as `owner`), not a closure each;
 * call `stopWatching` when the session closes.
 */
export function watchOutput<T>(conn: EngineSocket, limit: number, owner: T, onOverflow: (owner: T, buffered: number) => void): void {
  if (limit <= 0) return;
  (conn as Watched)[WATCH] = new OutputWatch<T>(conn, limit, owner, onOverflow) as OutputWatch<unknown>;
  conn.on("packetCreate", onPacketCreate);
  conn.on("flush", onFlush);
}
