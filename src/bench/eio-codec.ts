/**
 * Engine.IO v4 / Socket.IO v5 text framing, just enough for the bench's light clients:
 * `0{open}`, `2` ping / `3` pong, `1` close, and `4` + a Socket.IO packet
 * (`40{auth}` connect, `44{err}` connect_error, `42[...]` event, `42<id>[...]` with ack, `43<id>[...]` ack).
 */

export const SioType = { CONNECT: 0, DISCONNECT: 1, EVENT: 2, ACK: 3, CONNECT_ERROR: 4 } as const;

export interface OpenInfo {
  sid: string;
  pingInterval: number;
  pingTimeout: number;
  maxPayload?: number;
}

export interface SioPacket {
  type: number;
  nsp: string;
  id?: number;
  data?: unknown;
}

export type EioPacket =
  | { kind: "open"; open: OpenInfo }
  | { kind: "close" }
  | { kind: "ping" }
  | { kind: "pong" }
  | { kind: "noop" }
  | { kind: "message"; packet: SioPacket };

export class CodecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CodecError";
  }
}

export function decodeEio(text: string): EioPacket {
  switch (text[0]) {
    case "0":
      return { kind: "open", open: JSON.parse(text.slice(1)) as OpenInfo };
    case "1":
      return { kind: "close" };
    case "2":
      return { kind: "ping" };
    case "3":
      return { kind: "pong" };
    case "6":
      return { kind: "noop" };
    case "4":
      return { kind: "message", packet: decodeSio(text.slice(1)) };
    default:
      throw new CodecError(`unknown Engine.IO packet type ${JSON.stringify(text.slice(0, 1))}`);
  }
}

export function decodeSio(text: string): SioPacket {
  const type = Number(text[0]);
  if (!Number.isInteger(type) || type < 0 || type > 6) throw new CodecError(`unknown Socket.IO packet type ${JSON.stringify(text[0])}`);
  let i = 1;
  let nsp = "/";
  if (text[i] === "/") {
    const comma = text.indexOf(",", i);
    nsp = comma < 0 ? text.slice(i) : text.slice(i, comma);
    i = comma < 0 ? text.length : comma + 1;
  }
  let id: number | undefined;
  const start = i;
  while (i < text.length && text.charCodeAt(i) >= 48 && text.charCodeAt(i) <= 57) i += 1;
  if (i > start) id = Number(text.slice(start, i));
  const rest = text.slice(i);
  const packet: SioPacket = { type, nsp };
  if (id !== undefined) packet.id = id;
  if (rest.length > 0) packet.data = JSON.parse(rest) as unknown;
  return packet;
}

const prefix = (nsp: string) => (nsp === "/" ? "" : `${nsp},`);

export const PONG = "3";

export function encodeConnect(auth?: object, nsp = "/"): string {
  return `40${prefix(nsp)}${auth ? JSON.stringify(auth) : ""}`;
}

export function encodeEvent(name: string, args: unknown[], ackId?: number, nsp = "/"): string {
  return `42${prefix(nsp)}${ackId ?? ""}${JSON.stringify([name, ...args])}`;
}

export function encodeAck(ackId: number, args: unknown[], nsp = "/"): string {
  return `43${prefix(nsp)}${ackId}${JSON.stringify(args)}`;
}
