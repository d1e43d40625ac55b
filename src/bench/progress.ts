/**
 * The progress bar on stderr: one redrawn line on a terminal, plain lines (at most one per
 * `plainEveryMs`) when stderr is a file or a pipe, nothing with `quiet`.
 */
export interface Progress {
  phase(text: string): void;
  update(state: { done: number; total: number; text: string }): void;
  /** a line that stays (above the bar) */
  log(text: string): void;
  end(): void;
}

export function createProgress(options: { stream?: NodeJS.WriteStream; quiet?: boolean; plainEveryMs?: number } = {}): Progress {
  const stream = options.stream ?? process.stderr;
  const tty = Boolean(stream.isTTY) && !options.quiet;
  const plainEveryMs = options.plainEveryMs ?? 5000;
  let lastPlain = 0;
  let drawn = false;
  const started = Date.now();
  const clear = () => {
    if (tty && drawn) stream.write("\r\x1b[2K");
    drawn = false;
  };
  const elapsed = () => `${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s`;
  return {
    phase(text) {
      if (options.quiet) return;
      if (tty) {
        clear();
        stream.write(`${elapsed()} ${text}`);
        drawn = true;
      } else stream.write(`${elapsed()} ${text}\n`);
    },
    update({ done, total, text }) {
      if (options.quiet) return;
      const fraction = total > 0 ? Math.max(0, Math.min(1, done / total)) : 0;
      if (tty) {
        const width = 24;
        const filled = Math.round(fraction * width);
        clear();
        const line = `${elapsed()} [${"█".repeat(filled)}${"░".repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}% ${text}`;
        stream.write(line.slice(0, Math.max(40, (stream.columns || 120) - 1)));
        drawn = true;
      } else if (Date.now() - lastPlain >= plainEveryMs) {
        lastPlain = Date.now();
        stream.write(`${elapsed()} ${(fraction * 100).toFixed(0)}% ${text}\n`);
      }
    },
    log(text) {
      if (options.quiet) return;
      clear();
      stream.write(`${elapsed()} ${text}\n`);
    },
    end() {
      clear();
    },
  };
}
