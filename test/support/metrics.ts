/** Read one sample from a gateway's Prometheus text. */
export async function scrape(metricsPort: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
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
