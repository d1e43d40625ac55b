/**
 * `gateway_ticket_update_latency_seconds`: commit to emit, observed where the event is delivered,
 * once per event per instance that holds subscribers of its ticket.
 */
import type { Histogram } from "prom-client";
import type { GatewayServer } from "../io-types.js";
import { ticketRoom, type TicketUpdate } from "../protocol.js";

export function observeLatency(io: GatewayServer, histogram: Histogram, update: TicketUpdate): void {
  if (!io.of("/").adapter.rooms.get(ticketRoom(update.ticketId))?.size) return;
  const committed = Date.parse(update.at);
  // a database clock ahead of this host would give negative values: clamp rather than drop
  if (Number.isFinite(committed)) histogram.observe(Math.max(0, Date.now() - committed) / 1000);
}
