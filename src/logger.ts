import { pino, type Logger } from "pino";

export type { Logger };

/** JSON lines on stdout; secrets are redacted by path wherever they could appear; `err` keeps stack and cause. */
export function createLogger(level: string, base: Record<string, unknown> = {}): Logger {
  return pino({
    level,
    base: { ...base },
    timestamp: pino.stdTimeFunctions.isoTime,
    // errors keep their stack and their cause chain
    serializers: { err: pino.stdSerializers.errWithCause },
    redact: {
      paths: ["token", "*.token", "auth.token", "headers.authorization", "*.headers.authorization", "password", "*.password"],
      censor: "[redacted]",
    },
  });
}

export const silentLogger: Logger = pino({ level: "silent" });
