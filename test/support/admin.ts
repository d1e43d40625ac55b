/** A socket on the admin UI's `/admin` namespace, and how its handshake ended. */
import { io as ioClient, type Socket } from "socket.io-client";
import { onCleanup } from "./cleanup.js";

export function adminSocket(url: string, auth: Record<string, string>): Socket {
  const socket = ioClient(`${url}/admin`, { auth, transports: ["websocket"], reconnection: false, forceNew: true });
  onCleanup("admin socket", () => socket.disconnect());
  return socket;
}

/** "connected", or the connect_error message */
export const outcome = (socket: Socket) =>
  new Promise<string>((resolve) => {
    socket.once("connect", () => resolve("connected"));
    socket.once("connect_error", (error) => resolve(error.message));
  });
