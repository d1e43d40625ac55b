/**
 * The browser's own EventSource (Chromium, see support/browser.ts) on /sse: the token in the
 * query string, named events, and a dropped connection resumed by the browser's Last-Event-ID.
 */
import { expect } from "chai";
import type { Browser, Page } from "playwright-core";
import { launchChromium } from "./support/browser.js";
import { token } from "./support/client.js";
import { startCluster } from "./support/cluster.js";
import { sql } from "./support/db.js";
import { range } from "./support/history.js";
import { startProxy } from "./support/tcp-proxy.js";

const publish = (url: string, ticketId: string, count: number) =>
  sql(url, "SELECT realtime.publish_ticket_event($1, 'sse', jsonb_build_object('i', i)) FROM generate_series(1, $2) AS i", [ticketId, count]);

interface Seen {
  seqs: number[];
  opens: number;
  lastEventId: string;
}

const seen = (page: Page) => page.evaluate(() => (window as unknown as { seen: Seen }).seen);

describe("SSE in Chromium: the browser's EventSource", function () {
  this.timeout(60_000);
  let browser: Browser;

  before(async () => {
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
  });

  it("streams ticket:update with the token in the query string and resumes after a dropped connection with Last-Event-ID", async () => {
    const cluster = await startCluster(1, { mode: "single" });
    const port = cluster.gateways[0]!.port;
    const proxy = await startProxy(() => port);
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${proxy.url}/healthz`); // same origin as the stream
    const jwt = await token({ tickets: ["B"] });
    await page.evaluate((accessToken) => {
      const state = { seqs: [] as number[], opens: 0, lastEventId: "" };
      (window as unknown as { seen: typeof state }).seen = state;
      const es = new EventSource(`/sse?tickets=B&access_token=${encodeURIComponent(accessToken)}`);
      es.addEventListener("open", () => (state.opens += 1));
      es.addEventListener("ticket:update", (event) => {
        state.seqs.push((JSON.parse((event as MessageEvent).data) as { seq: number }).seq);
        state.lastEventId = (event as MessageEvent).lastEventId;
      });
    }, jwt);
    await page.waitForFunction(() => (window as unknown as { seen: Seen }).seen.opens === 1);
    await publish(cluster.databaseUrl, "B", 3);
    await page.waitForFunction(() => (window as unknown as { seen: Seen }).seen.seqs.length === 3);
    expect((await seen(page)).lastEventId).to.equal("B.3");

    proxy.refuse = true;
    proxy.cut();
    await publish(cluster.databaseUrl, "B", 4); // committed while the browser is cut off
    proxy.refuse = false;
    await page.waitForFunction(() => (window as unknown as { seen: Seen }).seen.opens >= 2, undefined, { timeout: 30_000 });
    await publish(cluster.databaseUrl, "B", 2);
    await page.waitForFunction(() => (window as unknown as { seen: Seen }).seen.seqs.length >= 9, undefined, { timeout: 20_000 });
    const after = await seen(page);
    expect(after.seqs).to.deep.equal(range(9));
    expect(after.lastEventId).to.equal("B.9");
    await context.close();
  });
});
