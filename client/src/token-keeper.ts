/**
 * The client's token: fetched with `getToken` when needed, refreshed on the live connection
 * (`auth:refresh`) before it expires, and replaced after the gateway refuses it.
 */
import { ClientErrorCode, TicketClientError } from "./errors.js";
import { refreshDelay, tokenExpiry } from "./token.js";

export interface TokenKeeperOptions {
  token?: string;
  getToken?: () => string | Promise<string>;
  refreshMarginMs: number;
  /** hand the new token to the gateway (auth:refresh); rejects when it is refused */
  refresh(token: string): Promise<void>;
  canRefresh(): boolean;
  onError(error: TicketClientError): void;
}

const MAX_TIMER_MS = 2 ** 31 - 1;
/** a token this close to its expiry is not worth sending in a handshake */
const STALE_MS = 2000;

export class TokenKeeper {
  private token: string | undefined;
  private expiresAt: number | undefined;
  private pending: Promise<string> | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  /** the gateway said the token expired (auth:expired) */
  expired = false;

  constructor(private readonly options: TokenKeeperOptions) {
    if (options.token !== undefined) this.accept(options.token);
  }

  get renewable(): boolean {
    return typeof this.options.getToken === "function";
  }

  /** The token for the next handshake. */
  async current(): Promise<string> {
    const fresh = this.token !== undefined && !this.expired && (this.expiresAt === undefined || this.expiresAt - Date.now() > STALE_MS);
    if (fresh || !this.renewable) {
      if (this.token === undefined) throw new TicketClientError(ClientErrorCode.TOKEN_UNAVAILABLE, "no token");
      return this.token;
    }
    return this.fetch();
  }

  /** The gateway refused the token: ask getToken for a new one next time. */
  invalidate(): void {
    if (this.renewable) this.token = undefined;
  }

  markExpired(): void {
    this.expired = true;
    this.invalidate();
  }

  connected(): void {
    this.schedule();
  }

  disconnected(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  close(): void {
    this.closed = true;
    this.disconnected();
  }

  private accept(token: string): void {
    this.token = token;
    this.expiresAt = tokenExpiry(token);
    this.expired = false;
  }

  private fetch(): Promise<string> {
    this.pending ??= (async () => {
      try {
        const token: unknown = await this.options.getToken!();
        if (typeof token !== "string" || token === "") {
          throw new TicketClientError(ClientErrorCode.TOKEN_UNAVAILABLE, "getToken must resolve a non-empty string");
        }
        this.accept(token);
        return token;
      } catch (error) {
        throw TicketClientError.from(error, ClientErrorCode.TOKEN_UNAVAILABLE);
      } finally {
        this.pending = undefined;
      }
    })();
    return this.pending;
  }

  private schedule(delayMs?: number): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.closed || !this.renewable || this.expiresAt === undefined) return;
    const delay = delayMs ?? refreshDelay(this.expiresAt, Date.now(), this.options.refreshMarginMs);
    this.timer = setTimeout(() => void this.refreshNow(), Math.min(delay, MAX_TIMER_MS));
  }

  private async refreshNow(): Promise<void> {
    this.timer = undefined;
    try {
      const token = await this.fetch();
      if (this.closed || !this.options.canRefresh()) return;
      await this.options.refresh(token);
      this.schedule();
    } catch (error) {
      this.options.onError(TicketClientError.from(error, ClientErrorCode.TOKEN_UNAVAILABLE));
      if (this.closed || !this.options.canRefresh()) return;
      // try again while the old token still holds; if it runs out, auth:expired and a reconnect follow
      const left = (this.expiresAt ?? Date.now()) - Date.now();
      this.schedule(Math.min(5000, Math.max(500, left / 2)));
    }
  }
}
