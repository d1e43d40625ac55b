/**
 * `gateway_ticket_update_latency_seconds` on the instance that delivers the update.
 *
 * A `ticket:update` reaches the other instances through the Redis adapter, so the elected listener
 * cannot see when they emit it. Every adapter (in-memory, classic Redis, sharded Redis) funnels a
 * broadcast into `Adapter.prototype.broadcast`, which calls `this._encode(packet)` exactly once
 * before writing the packet to its local sockets: on the emitting instance when it emits, and on
 * each receiving instance when the Redis message arrives (`super.broadcast` in both Redis
 * adapters). Wrapping that one instance method therefore sees every broadcast once per instance,
 * whatever the adapter, without touching the emit path. Checked against socket.io-adapter 2.5 and
 * @socket.io/redis-adapter 8.3; the test suite fails if a new version stops calling it.
 *
 * An instance counts an update only when it holds subscribers of the ticket: the emitting leader
 * also encodes updates for rooms it has no member of, and that is not a delivery.
 */
import type { Histogram } from "prom-client";
import { ticketRoom } from "../protocol.js";
import type { GatewayServer } from "../socket/context.js";

interface EncodingAdapter {
  rooms: Map<string, Set<string>>;
  _encode?: (packet: { data?: unknown[] }, packetOpts: unknown) => unknown;
}

/** Observe commit-to-emit latency of every `ticket:update` this instance delivers. */
export function observeDeliveryLatency(io: GatewayServer, histogram: Histogram): void {
  const adapter = io.of("/").adapter as unknown as EncodingAdapter;
  const encode = adapter._encode;
  if (typeof encode !== "function") throw new Error("socket.io-adapter no longer has _encode: update src/observability/delivery-latency.ts");
  adapter._encode = function (this: EncodingAdapter, packet, packetOpts) {
    const data = packet.data;
    if (Array.isArray(data) && data[0] === "ticket:update") observe(this, data[1], histogram);
    return encode.call(this, packet, packetOpts);
  };
}

function observe(adapter: EncodingAdapter, update: unknown, histogram: Histogram): void {
  if (typeof update !== "object" || update === null) return;
  const { ticketId, at } = update as { ticketId?: unknown; at?: unknown };
  if (typeof ticketId !== "string" || typeof at !== "string") return;
  if (!adapter.rooms.get(ticketRoom(ticketId))?.size) return;
  const committed = Date.parse(at);
  // a database clock ahead of this host would give negative values: clamp rather than drop
  if (Number.isFinite(committed)) histogram.observe(Math.max(0, Date.now() - committed) / 1000);
}
