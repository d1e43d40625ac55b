/**
 * Two SSE clients for the tests: `openSse`, a raw `node:http` reader that sees every byte the
 * gateway writes (headers, `retry:`, comments, ids), like `curl -N`; and `eventSource`, the npm
 * `eventsource` package (the WHATWG EventSource, reconnecting with Last-Event-ID by itself).
 */
import { request, type IncomingHttpHeaders } from "node:http";
import { EventSource } from "eventsource";
import { onCleanup } from "./cleanup.js";

export interface SseMessage {
  event: string;
  id: string | undefined;
  data: string;
}

export interface RawSse {
  status: number;
  headers: IncomingHttpHeaders;
  /** the body of a refusal (JSON), or "" for a stream */
  body: string;
  messages: SseMessage[];
  comments: string[];
  retry: number | undefined;
  /** every ticket:update's parsed data */
  updates(ticketId?: string): Array<{ ticketId: string; seq: number | null; data: unknown }>;
  /** resolves when the server ends the stream */
  ended: Promise<void>;
  close(): void;
}

export interface OpenSseOptions {
  token?: string;
  /** where the token goes: the Authorization header (default) or ?access_token= */
  tokenIn?: "header" | "query";
  lastEventId?: string;
  headers?: Record<string, string>;
}

/** `GET {base}/sse?tickets=…`, resolving once the status line is in. */
export function openSse(base: string, tickets: string, options: OpenSseOptions = {}): Promise<RawSse> {
  const url = new URL(`/sse?tickets=${encodeURIComponent(tickets).replace(/%2C/g, ",")}`, base);
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined) {
    if (options.tokenIn === "query") url.searchParams.set("access_token", options.token);
    else headers.authorization = `Bearer ${options.token}`;
  }
  if (options.lastEventId !== undefined) headers["last-event-id"] = options.lastEventId;
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, agent: false }, (res) => {
      res.setEncoding("utf8");
      let buffer = "";
      let body = "";
      const sse: RawSse = {
        status: res.statusCode ?? 0,
        headers: res.headers,
        body: "",
        messages: [],
        comments: [],
        retry: undefined,
        updates: (ticketId) =>
          sse.messages
            .filter((m) => m.event === "ticket:update")
            .map((m) => JSON.parse(m.data) as { ticketId: string; seq: number | null; data: unknown })
            .filter((u) => ticketId === undefined || u.ticketId === ticketId),
        ended: new Promise((done) => res.once("close", () => done())),
        close: () => req.destroy(),
      };
      const stream = res.statusCode === 200 && String(res.headers["content-type"]).startsWith("text/event-stream");
      res.on("data", (chunk: string) => {
        if (!stream) {
          body += chunk;
          sse.body = body;
          return;
        }
        buffer += chunk;
        let index;
        while ((index = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, index);
          buffer = buffer.slice(index + 2);
          const message: SseMessage = { event: "message", id: undefined, data: "" };
          let hasData = false;
          for (const line of block.split("\n")) {
            if (line.startsWith(":")) sse.comments.push(line.slice(1).trim());
            else if (line.startsWith("retry: ")) sse.retry = Number(line.slice(7));
            else if (line.startsWith("id: ")) message.id = line.slice(4);
            else if (line.startsWith("event: ")) message.event = line.slice(7);
            else if (line.startsWith("data: ")) {
              message.data += (hasData ? "\n" : "") + line.slice(6);
              hasData = true;
            }
          }
          if (hasData) sse.messages.push(message);
        }
      });
      res.on("error", () => undefined);
      onCleanup("sse stream", () => req.destroy());
      resolve(sse);
    });
    req.on("error", reject);
    req.end();
  });
}

/** The npm EventSource; `headers` go on every (re)connection. Closed after the test. */
export function eventSource(url: string, headers: Record<string, string> = {}): EventSource {
  const es = new EventSource(url, {
    fetch: (input, init) => fetch(input, { ...init, headers: { ...(init?.headers as Record<string, string>), ...headers } }),
  });
  onCleanup("eventsource", () => es.close());
  return es;
}

export function lastId(sse: RawSse): string | undefined {
  return sse.messages.at(-1)?.id;
}
