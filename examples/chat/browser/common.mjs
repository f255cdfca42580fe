// Shared by the browser scripts (chat_e2e.mjs, chat_cluster_e2e.mjs): the checks for
// Debian's Chromium and playwright-core, the watchdog, one headless persistent
// Chromium context in a fresh profile, and the step log the Rust tests read.

import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
export const STEP_TIMEOUT_MS = 15_000;

/** One line of progress on stdout: `e2e: MESSAGE`. */
export function step(message) {
  console.log(`e2e: ${message}`);
}

/**
 * Exits with code 3 and the command that installs it when Chromium or playwright-core
 * is missing. Else starts a watchdog (exit 1 after `totalTimeoutMs`) and launches
 * headless Chromium with a fresh profile directory named `profilePrefix…`.
 */
export async function launch(profilePrefix, totalTimeoutMs) {
  if (!existsSync(CHROMIUM)) {
    console.error(`${CHROMIUM} is missing: install Debian's Chromium with \`apt-get install -y chromium\``);
    process.exit(3);
  }
  let chromium;
  try {
    ({ chromium } = await import("playwright-core"));
  } catch (err) {
    console.error(`playwright-core is not installed (${err.message}): run \`npm ci --prefix examples/chat/browser\``);
    process.exit(3);
  }
  const watchdog = setTimeout(() => {
    console.error(`e2e: gave up after ${totalTimeoutMs} ms`);
    process.exit(1);
  }, totalTimeoutMs);
  const profile = mkdtempSync(join(tmpdir(), profilePrefix));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1100, height: 760 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  return { context, profile, watchdog };
}

/**
 * Alice picks Bob in her member list and sends him `text` privately: Bob's page shows it
 * as received from Alice, Alice's as sent. Throws otherwise.
 */
export async function privateMessage(alice, bob, text) {
  await alice.click('#members [data-testid="member"][data-user-name="Bob"]');
  const target = await alice.inputValue("#private-to");
  const bobId = await bob.getAttribute("#status", "data-client-id");
  if (target !== bobId) throw new Error(`clicking Bob selected ${target}, expected ${bobId}`);
  await alice.fill("#private-text", text);
  await alice.click("#private-send");
  const pm = bob.locator('#privates [data-testid="private-received"]').filter({ hasText: text });
  await pm.waitFor();
  if ((await pm.getAttribute("data-from")) !== "Alice") throw new Error("private message not from Alice");
  await alice.locator('#privates [data-testid="private-sent"]').filter({ hasText: text }).waitFor();
}

/** Join `room` from the page's form; resolves once the page shows it as current. */
export async function joinRoom(page, room) {
  await page.fill("#room", room);
  await page.click("#join");
  await page.locator("#current-room").filter({ hasText: `#${room}` }).waitFor();
}

/** The user names in the page's member list, in page order. */
export async function memberNames(page) {
  return page.locator('#members [data-testid="member"]').evaluateAll((nodes) =>
    nodes.map((n) => n.dataset.userName),
  );
}

/**
 * Wait until the page's member list is `expected` (any order): checked inside the page on
 * each animation frame (Playwright's `waitForFunction`), not by round trips from here.
 */
export async function waitForMembers(page, expected, timeout = STEP_TIMEOUT_MS) {
  const want = [...expected].sort();
  try {
    await page.waitForFunction(
      (want) => {
        const got = [...document.querySelectorAll('#members [data-testid="member"]')].map((n) => n.dataset.userName).sort();
        return JSON.stringify(got) === JSON.stringify(want);
      },
      want,
      { timeout },
    );
  } catch (err) {
    throw new Error(`member list (${err.message.split("\n")[0]}): expected ${JSON.stringify(want)}, got ${JSON.stringify((await memberNames(page)).sort())}`);
  }
}
