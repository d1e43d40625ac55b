/**
 * Commands of one event-loop turn sent together: every call made before the next `setImmediate`
 * joins one ioredis pipeline, written to the socket in one go. A connect ramp admits and
 * subscribes many sockets per turn, each with its own script call (the per-IP slot, the presence
 * join); sent one by one, each paid its own socket write. The order of the calls is kept, and a
 * call's reply (or error, or ioredis' command timeout) settles only its own promise.
 *
 * Only for commands whose order against the client's other, unbatched commands does not matter
 * (a batched call goes out at the end of the turn, after any unbatched one sent meanwhile).
 * On a Redis Cluster every key of a turn must be in one slot: callers use the `{gw}` hash tag.
 */
import type { ChainableCommander } from "ioredis";
import type { RedisConnection } from "./redis.js";

type Commands = Record<string, (...args: unknown[]) => Promise<unknown>>;

interface Call {
  command: string;
  args: Array<string | number>;
  resolve(reply: unknown): void;
  reject(error: unknown): void;
}

export class RedisBatch {
  private queue: Call[] = [];

  constructor(private readonly client: RedisConnection) {}

  /** `client[command](...args)`, sent with the other calls of this turn */
  call<T>(command: string, args: Array<string | number>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.queue.length === 0) setImmediate(() => this.flush());
      this.queue.push({ command, args, resolve: resolve as (reply: unknown) => void, reject });
    });
  }

  private flush(): void {
    const calls = this.queue;
    this.queue = [];
    if (calls.length === 1) {
      // a pipeline of one costs more than the command itself (measured: ~25 %)
      const [only] = calls as [Call];
      (this.client as unknown as Commands)[only.command]!(...only.args).then(only.resolve, only.reject);
      return;
    }
    const pipeline = this.client.pipeline() as unknown as Record<string, (...args: unknown[]) => unknown> & ChainableCommander;
    for (const call of calls) {
      pipeline[call.command]!(...call.args, (error: Error | null | undefined, reply?: unknown) => (error ? call.reject(error) : call.resolve(reply)));
    }
    // each command settles through its own callback; the exec result repeats them
    pipeline.exec().catch(() => undefined);
  }
}
