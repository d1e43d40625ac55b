/**
 * `realtime-gateway/client`: the browser and Node client. It depends only on socket.io-client and
 * the protocol's types, so bundlers never pull server code.
 */
export {
  createTicketClient,
  type ClientEvents,
  type ClientSocket,
  type ConnectionState,
  type ConnectionStatus,
  type TicketClient,
  type TicketClientOptions,
} from "./ticket-client.js";
export type { SubscribedInfo, SubscriptionHandlers, TypingSignal } from "./subscription.js";
export { ClientErrorCode, TicketClientError } from "./errors.js";
export { tokenExpiry } from "./token.js";
export type { TicketUpdate, Viewer, SubscribeResult } from "./protocol.js";
