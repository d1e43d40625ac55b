/**
 * A TCP proxy the test owns: every connection goes to the port `pick()` chooses at the moment it
 * arrives (a load balancer), and `cut()` drops every connection through it at once, the way a
 * conntrack reset or a dying NAT does. With `refuse` set, new connections are dropped too.
 */
import { createServer, connect as tcpConnect, type Server, type Socket } from "node:net";
import { onCleanup } from "./cleanup.js";

export interface TcpProxy {
  url: string;
  port: number;
  /** open client connections per backend port */
  open: Map<number, Set<Socket>>;
  /** destroy every open connection */
  cut(): void;
  /** while true, new connections are dropped at once */
  refuse: boolean;
}

export async function startProxy(pick: () => Promise<number | undefined> | number | undefined): Promise<TcpProxy> {
  const open = new Map<number, Set<Socket>>();
  const server: Server = createServer({ pauseOnConnect: true }, (client) => {
    client.on("error", () => undefined);
    void Promise.resolve(pick()).then((port) => {
      if (port === undefined || client.destroyed || proxy.refuse) return void client.destroy();
      const upstream = tcpConnect(port, "127.0.0.1");
      const set = open.get(port) ?? new Set<Socket>();
      open.set(port, set);
      set.add(client);
      const close = () => {
        set.delete(client);
        client.destroy();
        upstream.destroy();
      };
      upstream.on("error", close).on("close", close);
      client.on("close", close);
      client.pipe(upstream).pipe(client);
      client.resume();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address() as { port: number };
  const proxy: TcpProxy = {
    url: `http://127.0.0.1:${address.port}`,
    port: address.port,
    open,
    refuse: false,
    cut() {
      for (const set of open.values()) for (const socket of set) socket.destroy();
    },
  };
  onCleanup(`tcp proxy ${address.port}`, async () => {
    proxy.cut();
    await new Promise((resolve) => server.close(resolve));
  });
  return proxy;
}

async function readyz(port: number): Promise<number> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(1000) });
    await response.body?.cancel();
    return response.status;
  } catch {
    return 0;
  }
}

/** Round-robin over the backends whose /readyz answers 200 when a connection arrives. */
export function readyRoundRobin(backends: () => number[]): () => Promise<number | undefined> {
  let next = 0;
  return async () => {
    const ports = backends();
    for (let i = 0; i < ports.length; i++) {
      const port = ports[(next + i) % ports.length]!;
      if ((await readyz(port)) === 200) {
        next = (next + i + 1) % ports.length;
        return port;
      }
    }
    return undefined;
  };
}
