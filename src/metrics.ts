/**
 * Per-instance Prometheus registry (never prom-client's global one, so several gateways can live
 * in one process). Labels are bounded: no socket, IP or ticket ever becomes a label value.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export type Metrics = ReturnType<typeof createMetrics>;

/** 1 ms to 10 s, dense where the target (tens of ms) and the alert (500 ms) are. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export function createMetrics(instanceId: string) {
  const registry = new Registry();
  registry.setDefaultLabels({ instance_id: instanceId });
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const metrics = {
    registry,
    connections: new Gauge({ name: "gateway_connections", help: "Open Socket.IO connections on this instance", registers }),
    connectionsOpened: new Counter({ name: "gateway_connections_opened_total", help: "Accepted connections", registers }),
    // SSE streams are counted apart, so gateway_connections keeps meaning Socket.IO (autoscaling uses it)
    sseStreams: new Gauge({ name: "gateway_sse_streams", help: "Open Server-Sent Events streams (/sse) on this instance", registers }),
    sseStreamsOpened: new Counter({ name: "gateway_sse_streams_opened_total", help: "Accepted Server-Sent Events streams", registers }),
    connectionsRejected: new Counter({
      name: "gateway_connections_rejected_total",
      help: "Rejected handshakes by reason (the error code)",
      labelNames: ["reason"] as const,
      registers,
    }),
    subscriptions: new Gauge({ name: "gateway_subscriptions", help: "Ticket subscriptions held by sockets on this instance", registers }),
    clientEvents: new Counter({
      name: "gateway_client_events_total",
      help: "Client events by event name and result (ok or an error code)",
      labelNames: ["event", "result"] as const,
      registers,
    }),
    updatesEmitted: new Counter({
      name: "gateway_ticket_updates_emitted_total",
      help: "ticket:update events emitted into rooms by the listener",
      registers,
    }),
    updateLatency: new Histogram({
      name: "gateway_ticket_update_latency_seconds",
      help: "Time from the event's commit to its emit to local subscribers, observed once per event on every instance that delivers it",
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    dispatchLatency: new Histogram({
      name: "gateway_ticket_update_dispatch_latency_seconds",
      help: "Time from the event's commit to its dispatch by the elected listener (the PostgreSQL part of the latency)",
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    listenerBacklog: new Gauge({
      name: "gateway_listener_backlog",
      help: "Committed events the leader has not sequenced yet (read at scrape time)",
      registers,
    }),
    listenerOldestPendingAge: new Gauge({
      name: "gateway_listener_oldest_pending_age_seconds",
      help: "Age of the oldest committed event not yet dispatched, 0 when none waits (read at scrape time)",
      registers,
    }),
    pgNotificationQueueUsage: new Gauge({
      name: "gateway_pg_notification_queue_usage_ratio",
      help: "pg_notification_queue_usage(): fraction of PostgreSQL's NOTIFY queue in use (read at scrape time)",
      registers,
    }),
    maxConnections: new Gauge({
      name: "gateway_max_connections",
      help: "MAX_CONNECTIONS of this instance (0: no cap), so alerts can compare gateway_connections with it",
      registers,
    }),
    eventSource: new Gauge({
      name: "gateway_event_source",
      help: "1 for the event source this instance runs (EVENT_SOURCE resolved at start): replication or queue",
      labelNames: ["source"] as const,
      registers,
    }),
    replicationSlotLag: new Gauge({
      name: "gateway_replication_slot_lag_bytes",
      help: "WAL the replication slot retains beyond what the leader confirmed delivered (pg_current_wal_lsn - confirmed_flush_lsn); on the leader",
      registers,
    }),
    replicationEvents: new Counter({
      name: "gateway_replication_events_total",
      help: "Events the leader numbered from the replication stream (the rest came from the queue sweep)",
      registers,
    }),
    replicationVisibilityWaits: new Counter({
      name: "gateway_replication_visibility_waits_total",
      help: "Times a replicated commit was not visible yet to the leader's snapshot and was retried a millisecond later",
      registers,
    }),
    replicationRestarts: new Counter({
      name: "gateway_replication_restarts_total",
      help: "Times the leader's replication stream ended and was restarted (the queue is polled meanwhile)",
      registers,
    }),
    listenerLeader: new Gauge({ name: "gateway_listener_leader", help: "1 while this instance is the elected listener", registers }),
    listenerConnected: new Gauge({
      name: "gateway_listener_connected",
      help: "1 while the listener's PostgreSQL session is connected",
      registers,
    }),
    redisConnected: new Gauge({ name: "gateway_redis_connected", help: "1 while every Redis client is ready (1 in single-node mode)", registers }),
    recoveredEvents: new Counter({
      name: "gateway_recovered_events_total",
      help: "Events replayed to resubscribing clients (missed)",
      registers,
    }),
    reconciledEvents: new Counter({
      name: "gateway_reconciled_events_total",
      help: "Events this instance repaired from the outbox (a gap or a tail the bus did not bring)",
      registers,
    }),
    duplicatesDropped: new Counter({
      name: "gateway_delivery_duplicates_total",
      help: "Events dropped because this instance had delivered their seq already (echoes, late or repeated publishes)",
      registers,
    }),
    repairs: new Counter({
      name: "gateway_delivery_repairs_total",
      help: "Repair reads of the outbox by result (ok, failed: retried with backoff)",
      labelNames: ["result"] as const,
      registers,
    }),
    repairLag: new Histogram({
      name: "gateway_delivery_repair_lag_seconds",
      help: "Time a room spent behind the outbox, from the gap's detection to its repair",
      buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    busPublishFailures: new Counter({
      name: "gateway_delivery_publish_failures_total",
      help: "Publishes of sequenced events to Redis that failed (the instances repair them from the outbox)",
      registers,
    }),
    malformedNotifications: new Counter({
      name: "gateway_listener_malformed_notifications_total",
      help: "Raw NOTIFY payloads that could not be parsed",
      registers,
    }),
    engineSessions: new Gauge({
      name: "gateway_engine_sessions",
      help: "Engine.IO sessions holding a connection slot on this instance, joined or not (what MAX_CONNECTIONS counts)",
      registers,
    }),
    engineRefusals: new Gauge({
      name: "gateway_engine_refusals_in_flight",
      help: "Refused Engine.IO sessions still open on this instance to be told their error code (bounded; beyond the bound refusals are plain HTTP 429/503)",
      registers,
    }),
    slowConsumerDisconnects: new Counter({
      name: "gateway_slow_consumer_disconnects_total",
      help: "Sockets disconnected because their unsent output exceeded MAX_BUFFERED_BYTES_PER_SOCKET",
      registers,
    }),
    watchSkippedRows: new Counter({
      name: "gateway_watch_skipped_rows_total",
      help: "Rows of watched tables that published nothing because their ticket id was NULL or invalid (realtime.skipped_events)",
      registers,
    }),
    adminLogins: new Counter({
      name: "gateway_admin_logins_total",
      help: "Admin UI login attempts by result (ok, invalid, throttled)",
      labelNames: ["result"] as const,
      registers,
    }),
    limiterFallback: new Gauge({
      name: "gateway_limiter_fallback",
      help: "1 while per-IP connection limits are enforced per instance because Redis is unreachable",
      registers,
    }),
  };
  // labelled counters export nothing until first used: start the results alerts look for at 0
  for (const result of ["ok", "failed"]) metrics.repairs.inc({ result }, 0);
  return metrics;
}
