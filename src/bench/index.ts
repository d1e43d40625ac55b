/**
 * `realtime-gateway bench`: parse, run the scenario with everything it needs started and cleaned
 * up, print the table, write --out. Ctrl-C (SIGINT/SIGTERM) runs the cleanup and exits 130;
 * whatever still runs at exit is killed by process group.
 */
import { readFileSync } from "node:fs";
import { OptionError, parseBenchArgs, USAGE } from "./options.js";
import { CleanupStack } from "./cleanup.js";
import { createProgress } from "./progress.js";
import { killAllOwnedSync } from "./procs.js";
import { runBench } from "./run-bench.js";
import { printResult, writeOut } from "./output.js";
import { availableParallelism } from "node:os";

function fdLimit(): number {
  try {
    const match = /Max open files\s+(\d+)/.exec(readFileSync("/proc/self/limits", "utf8"));
    return match ? Number(match[1]) : Infinity;
  } catch {
    return Infinity;
  }
}

export async function bench(args: string[]): Promise<void> {
  let options;
  try {
    options = parseBenchArgs(args, process.env, availableParallelism());
  } catch (error) {
    if (error instanceof OptionError && error.message === USAGE) {
      process.stdout.write(USAGE);
      process.exit(0);
    }
    if (error instanceof OptionError || (error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      process.stderr.write(`realtime-gateway bench: ${(error as Error).message}\n`);
      process.exit(2);
    }
    throw error;
  }
  // each client holds one descriptor here, and the bench's gateways inherit the same limit
  const needed = options.clients + 500;
  if (options.scenario !== "writers" && fdLimit() < needed) {
    process.stderr.write(`realtime-gateway bench: ${options.clients} clients need about ${needed} open files, the limit is ${fdLimit()}: run \`ulimit -n ${needed}\` first\n`);
    process.exit(2);
  }
  const progress = createProgress({ quiet: options.quiet });
  const stack = new CleanupStack();
  process.once("exit", killAllOwnedSync);
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    progress.log(`${signal}: stopping what the bench started`);
    void stack.run().finally(() => {
      killAllOwnedSync();
      process.exit(130);
    });
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    const result = await runBench(options, stack, progress);
    progress.end();
    printResult(result, options);
    if (options.out) {
      const files = await writeOut(result, options.out);
      process.stderr.write(`wrote ${files.join(", ")}\n`);
    }
  } catch (error) {
    if (interrupted) await new Promise(() => undefined);
    progress.end();
    const cleanupError = await stack.run();
    process.stderr.write(`realtime-gateway bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    if (cleanupError) process.stderr.write(`${cleanupError.message}: ${String(cleanupError.cause)}\n`);
    killAllOwnedSync();
    process.exit(1);
  }
  const cleanupError = await stack.run();
  killAllOwnedSync();
  if (cleanupError) {
    process.stderr.write(`realtime-gateway bench: ${cleanupError.message}: ${String(cleanupError.cause)}\n`);
    process.exit(1);
  }
  process.exit(0);
}
