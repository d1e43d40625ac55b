/**
 * Where the bench's own entry points live: next to this file, as .js in the package, as .ts when
 * run from source (tests), where workers and children need tsx loaded to read them.
 */
export const SOURCE_EXT = import.meta.url.endsWith(".ts") ? ".ts" : ".js";

/** node flags for a worker or child that runs one of our files */
export function nodeArgs(): string[] {
  const args = [...process.execArgv];
  if (SOURCE_EXT === ".ts" && !args.some((a, i) => a.includes("tsx") && (i === 0 || /^--(import|require|loader)/.test(args[i - 1]!) || a.startsWith("--import")))) {
    args.push("--import", "tsx");
  }
  return args;
}
