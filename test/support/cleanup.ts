/**
 * Per-test cleanup: helpers register what they open; the root hook runs it after each test
 * (last-in-first-out) and fails a test that left a gateway running.
 */
type Cleanup = { name: string; run: () => unknown | Promise<unknown> };

const pending: Cleanup[] = [];
const live = new Set<string>();

export function onCleanup(name: string, run: () => unknown | Promise<unknown>): void {
  pending.push({ name, run });
}

/** Track a long-lived resource (a gateway, a child process) so leaks are reported. */
export function track(name: string): () => void {
  live.add(name);
  return () => live.delete(name);
}

export async function runCleanups(): Promise<string[]> {
  const errors: string[] = [];
  while (pending.length > 0) {
    const { name, run } = pending.pop()!;
    try {
      await run();
    } catch (error) {
      errors.push(`${name}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  return errors;
}

export function leaked(): string[] {
  return [...live];
}
