/** Read one sample from a gateway's Prometheus text. */
export async function scrape(metricsPort: number, timeoutMs = 5000): Promise<string> {
  // a stopped (SIGSTOP) process accepts the connection and never answers: give up in time
  const response = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
  return response.text();
}

/** The value of `name` (with `labels` as a substring match of the label set), or undefined. */
export function sample(text: string, name: string, labels = ""): number | undefined {
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const match = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    if (labels && !(match[2] ?? "").includes(labels)) continue;
    return Number(match[3]);
  }
  return undefined;
}
