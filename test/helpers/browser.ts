import assert from "node:assert/strict";
import { existsSync } from "node:fs";

/** Chromium used by the report tests (Debian's, or CLEAVE_CHROMIUM). */
export const CHROMIUM = process.env.CLEAVE_CHROMIUM ?? "/usr/bin/chromium";
/** Flags that keep the browser off the network and out of first-run work. */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-quic",
];

/** playwright-core and Chromium, or a failure saying how to install what is missing. */
export async function launchBrowser(userDataDir: string) {
  if (!existsSync(CHROMIUM)) {
    assert.fail(
      `Chromium not found at ${CHROMIUM}: the report test needs a real browser. Install it with ` +
        "`apt-get update && apt-get install -y chromium` (or set CLEAVE_CHROMIUM to its path).",
    );
  }
  let pw: typeof import("playwright-core");
  try {
    pw = await import("playwright-core");
  } catch {
    assert.fail(
      "playwright-core is not installed: `npm install playwright-core` (a devDependency of cleave).",
    );
  }
  return pw.chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1400, height: 900 },
  });
}
