/** The load test arrives with its own issue; until then the command says so plainly. */
export async function bench(_args: string[]): Promise<void> {
  process.stderr.write("realtime-gateway bench: not built yet (see the open issues)\n");
  process.exit(2);
}
