/** Releasers registered where each resource is opened, run last-in-first-out, once (a second Ctrl-C is harmless). */
export class CleanupStack {
  private releasers: { name: string; release: () => Promise<unknown> | unknown }[] = [];
  private running: Promise<Error | undefined> | undefined;

  defer(name: string, release: () => Promise<unknown> | unknown): void {
    this.releasers.push({ name, release });
  }

  /** run and forget one releaser early (a phase ends before the run does) */
  async release(name: string): Promise<void> {
    const index = this.releasers.findLastIndex((r) => r.name === name);
    if (index < 0) return;
    const [entry] = this.releasers.splice(index, 1);
    await entry!.release();
  }

  /** resolves with the first error, after every releaser ran */
  run(): Promise<Error | undefined> {
    this.running ??= (async () => {
      let first: Error | undefined;
      while (this.releasers.length > 0) {
        const { name, release } = this.releasers.pop()!;
        try {
          await release();
        } catch (error) {
          first ??= new Error(`cleanup of ${name} failed`, { cause: error });
        }
      }
      return first;
    })();
    return this.running;
  }
}
