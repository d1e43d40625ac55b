/**
 * Chromium for the browser tests, from the npm registry: @sparticuz/chromium ships a headless
 * Chromium inside the package (unpacked to the OS temp dir on first use), driven by playwright-core.
 * A system Chromium is used instead only when one is there (CHROMIUM_PATH, or /usr/bin/chromium).
 */
import { existsSync } from "node:fs";
import { chromium as playwright, type Browser } from "playwright-core";

const SYSTEM_CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const QUIET = ["--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-sandbox", "--headless"];

export async function launchChromium(): Promise<Browser> {
  if (existsSync(SYSTEM_CHROMIUM)) {
    return playwright.launch({ executablePath: SYSTEM_CHROMIUM, args: ["--disable-gpu", ...QUIET] });
  }
  if (process.env.CHROMIUM_PATH) throw new Error(`CHROMIUM_PATH=${process.env.CHROMIUM_PATH} does not exist`);
  const { default: chromium } = await import("@sparticuz/chromium");
  // --single-process (for AWS Lambda's sandbox) takes the whole browser down when a context closes
  const args = chromium.args.filter((arg) => arg !== "--single-process");
  return playwright.launch({ executablePath: await chromium.executablePath(), args: [...args, ...QUIET] });
}
