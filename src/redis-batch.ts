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

type Callback = (error: Error | null | undefined, reply?: unknown) => void;
type Commands = Record<string, (...args: unknown[]) => unknown>;

export class RedisBatch {
  private pipeline: ChainableCommander | undefined;

  constructor(private readonly client: RedisConnection) {}

  /** `client[command](...args)`, sent with the other calls of this turn */
  call<T>(command: string, args: Array<string | number>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const callback: Callback = (error, reply) => (error ? reject(error) : resolve(reply as T));
      (this.current() as unknown as Commands)[command]!(...args, callback);
    });
  }

  private current(): ChainableCommander {
    if (this.pipeline) return this.pipeline;
    const pipeline = this.client.pipeline();
    this.pipeline = pipeline;
    setImmediate(() => {
      this.pipeline = undefined;
      // each command settles through its own callback; the exec result repeats them
      pipeline.exec().catch(() => undefined);
    });
    return pipeline;
  }
}
