/**
 * The process entry: the only place that reads `process.env` and installs signal handlers.
 * First SIGTERM/SIGINT drains; a second one, or the grace timeout, forces the exit.
 */
import { pathToFileURL } from "node:url";
import { ConfigError, loadConfig, type GatewayConfig, type LoadOptions } from "./config.js";
import { StartupError, coerceError } from "./errors.js";
import { createGateway } from "./gateway.js";
import { createLogger } from "./logger.js";

/** Parse the environment or exit with one line naming the bad variable. */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env, options: LoadOptions = {}): GatewayConfig {
  try {
    return loadConfig(env, options);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`realtime-gateway: invalid configuration: ${error.message}\n`);
      process.exit(78);
    }
    throw error;
  }
}

export async function serve(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const config = configFromEnv(env);
  const logger = createLogger(config.logLevel, { instanceId: config.instanceId });
  const gateway = createGateway(config, { logger });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      logger.warn({ signal }, "second signal: forcing exit");
      process.exit(1);
    }
    const force = setTimeout(() => {
      logger.error({ graceMs: config.shutdownGraceMs }, "shutdown grace period exceeded: forcing exit");
      process.exit(1);
    }, config.shutdownGraceMs + 5000);
    force.unref();
    gateway.stop(signal).then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: coerceError(error) }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  try {
    await gateway.start();
  } catch (error) {
    logger.fatal({ err: error instanceof StartupError ? error.message : coerceError(error) }, "gateway failed to start");
    process.exit(1);
  }
  const base = `http://${config.host === "0.0.0.0" ? "localhost" : config.host}:${gateway.port}`;
  if (config.demoUi) logger.info({ url: `${base}/` }, `demo page: ${base}/`);
  if (gateway.database?.embedded) {
    logger.info(
      {
        tokenCommand: `npx realtime-gateway token --sub alice --name Alice --tickets '*'`,
        sql: `psql '${gateway.database.url}' -c "UPDATE tickets SET status = 'pending' WHERE id = '1'"`,
      },
      "embedded mode: mint a token with `npx realtime-gateway token --sub alice`, subscribe to ticket 1, then change it with the SQL line",
    );
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  void serve();
}
