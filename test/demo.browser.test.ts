/**
 * The demo page in a real browser (Chromium from npm, or the system's, through playwright-core: see support/browser.ts): two agents in two
 * browser contexts on one ticket. Screenshots go to test-artifacts/ (and docs/demo.png when it is
 * missing or UPDATE_DOCS_SCREENSHOT=1).
 */
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { expect } from "chai";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { seedDemo } from "../src/db/embedded.js";
import { onCleanup } from "./support/cleanup.js";
import { launchChromium } from "./support/browser.js";
import { token } from "./support/client.js";
import { startCluster, type Cluster } from "./support/cluster.js";
import { ROOT } from "./support/process.js";

const ARTIFACTS = join(ROOT, "test-artifacts");
const DOCS_SCREENSHOT = join(ROOT, "docs", "demo.png");

/**
 * Milliseconds from `actor`'s form submit to `text` showing in `observer`, both read from this
 * machine's clock inside the pages, so the browser driver's own overhead is not counted.
 */
async function propagation(actor: Page, form: string, observer: Page, selector: string, text: string, act: () => Promise<void>): Promise<number> {
  await actor.evaluate((f) => {
    document.querySelector(f)!.addEventListener("submit", () => ((window as unknown as { submittedAt: number }).submittedAt = Date.now()), { capture: true, once: true });
  }, form);
  const seen = observer.waitForFunction(
    ([s, t]) => (Array.from(document.querySelectorAll(s!)).some((e) => e.textContent?.includes(t!)) ? Date.now() : false),
    [selector, text],
    { polling: 10, timeout: 10_000 },
  );
  await act();
  const seenAt = (await (await seen).jsonValue()) as number;
  const submittedAt = await actor.evaluate(() => (window as unknown as { submittedAt: number }).submittedAt);
  return seenAt - submittedAt;
}

async function demoCluster(): Promise<Cluster> {
  const cluster = await startCluster(1, { mode: "single", env: { DEMO_UI: "true" } });
  await seedDemo(cluster.databaseUrl);
  return cluster;
}

describe("demo page in Chromium", function () {
  this.timeout(60_000);
  let browser: Browser;

  before(async function () {
    browser = await launchChromium();
    await mkdir(ARTIFACTS, { recursive: true });
  });

  after(async () => {
    await browser?.close();
  });

  async function open(url: string): Promise<{ context: BrowserContext; page: Page; errors: string[] }> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 820 } });
    onCleanup("browser context", () => context.close());
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    await page.goto(url);
    return { context, page, errors };
  }

  it("shows two agents on one ticket each other's presence, typing and updates within a second", async () => {
    const cluster = await demoCluster();
    const base = cluster.urls[0]!;
    const alice = await open(`${base}/?agent=alice&ticket=1`);
    const bob = await open(`${base}/?agent=bob&ticket=1`);
    for (const { page } of [alice, bob]) {
      await page.locator('#connection[data-state="connected"]').waitFor();
      await page.locator("#ticket-subject", { hasText: "Cannot log in after password reset" }).waitFor();
    }

    // presence, both ways
    await alice.page.locator('#viewers li[data-user-id="bob"]', { hasText: "Bob Chen" }).waitFor();
    await bob.page.locator('#viewers li[data-user-id="alice"]', { hasText: "Alice Martin" }).waitFor();
    expect(await alice.page.locator('#viewers li[data-user-id="alice"]').textContent()).to.equal("Alice Martin (you)");

    // Bob adds a comment: Alice sees it within a second of Bob's click
    await bob.page.locator("#comment").fill("Reset link sent again, please check your spam folder.");
    const commentMs = await propagation(bob.page, "#comment-form", alice.page, "#comments li", "Reset link sent again", () =>
      bob.page.getByRole("button", { name: "Add comment" }).click(),
    );
    expect(commentMs, "Bob's submit to Alice's screen").to.be.below(1000);
    expect(await alice.page.locator("#comments li .meta strong").last().textContent()).to.equal("Bob Chen");

    // Alice changes the status: Bob sees it within a second
    await alice.page.locator("#status").selectOption("pending");
    const statusMs = await propagation(alice.page, "#status-form", bob.page, "#ticket-status", "pending", () =>
      alice.page.getByRole("button", { name: "Update status" }).click(),
    );
    expect(statusMs, "Alice's submit to Bob's screen").to.be.below(1000);

    // typing, both ways
    await bob.page.locator("#comment").pressSequentially("Thanks Alice, I'll follow up");
    await alice.page.locator("#typing", { hasText: "Bob Chen is typing…" }).waitFor();
    await alice.page.locator("#comment").pressSequentially("Sure");
    await bob.page.locator("#typing", { hasText: "Alice Martin is typing…" }).waitFor();

    // the live-updates panel lists the ticket's events in seq order, newest first
    const seqs = await alice.page.locator("#events li").evaluateAll((items) => items.map((li) => Number((li as HTMLElement).dataset.seq)));
    expect(seqs.length).to.be.at.least(2);
    expect([...seqs].sort((a, b) => b - a)).to.deep.equal(seqs);

    await alice.page.screenshot({ path: join(ARTIFACTS, "demo-alice.png") });
    await bob.page.screenshot({ path: join(ARTIFACTS, "demo-bob.png") });
    if (!existsSync(DOCS_SCREENSHOT) || process.env.UPDATE_DOCS_SCREENSHOT === "1") await alice.page.screenshot({ path: DOCS_SCREENSHOT });
    expect(alice.errors.concat(bob.errors)).to.be.empty;
  });

  it("says clearly that the gateway refused the connection", async () => {
    const cluster = await demoCluster();
    const base = cluster.urls[0]!;
    const context = await browser.newContext({ viewport: { width: 1280, height: 820 } });
    onCleanup("browser context", () => context.close());
    // the demo backend hands out a token the gateway does not accept
    const forged = await token({ sub: "alice", secret: "a-secret-the-gateway-does-not-know" });
    await context.route("**/demo/token", (route) => route.fulfill({ json: { token: forged } }));
    const page = await context.newPage();
    await page.goto(`${base}/?agent=alice&ticket=1`);
    const alert = page.getByRole("alert");
    await alert.filter({ hasText: "The gateway refused the connection (UNAUTHORIZED): bad signature" }).waitFor();
    // after a few fresh tokens, all refused, the client stops retrying and says so
    await page.locator('#connection[data-state="refused"]', { hasText: "Refused" }).waitFor({ timeout: 20_000 });
    expect(await alert.textContent()).to.match(/refused the connection \(UNAUTHORIZED\): bad signature\. Reload the page/);
    await page.screenshot({ path: join(ARTIFACTS, "demo-refused.png") });
  });

  it("says so when the gateway goes away, and that it is retrying", async () => {
    const cluster = await demoCluster();
    const { page } = await open(`${cluster.urls[0]}/?agent=carol&ticket=2`);
    await page.locator('#connection[data-state="connected"]').waitFor();
    await cluster.stop();
    await page.locator('#connection[data-state="reconnecting"]').waitFor();
    await page.getByRole("alert").filter({ hasText: /Cannot reach the gateway: .*Retrying/ }).waitFor();
    await page.screenshot({ path: join(ARTIFACTS, "demo-unreachable.png") });
  });
});
