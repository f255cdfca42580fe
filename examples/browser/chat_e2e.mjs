// End-to-end test of the chat example in a real browser (Debian's headless Chromium,
// driven by playwright-core, which never downloads a browser of its own).
//
//   node examples/browser/chat_e2e.mjs <page url> [screenshot.png]
//
// Two pages with different user names join the same room; one types (the other shows
// the typing indicator), sends a message (the other shows it), and a private message
// goes the other way. Exit code 0 on success; on failure the reason is printed and a
// screenshot of each page is written next to the requested one (`*-failure-*.png`).
// Usually run by `cargo test -p zocket-examples --test chat_browser`.

import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const STEP_TIMEOUT_MS = 15_000;
const TOTAL_TIMEOUT_MS = 120_000;

const url = process.argv[2];
const screenshot = resolve(process.argv[3] || "target/chat-e2e.png");
if (!url) {
  console.error("usage: node chat_e2e.mjs <page url> [screenshot.png]");
  process.exit(2);
}
if (!existsSync(CHROMIUM)) {
  console.error(`${CHROMIUM} is missing: install Debian's Chromium with \`apt-get install -y chromium\``);
  process.exit(3);
}

let chromium;
try {
  ({ chromium } = await import("playwright-core"));
} catch (err) {
  console.error(`playwright-core is not installed (${err.message}): run \`npm ci --prefix examples/browser\``);
  process.exit(3);
}

const watchdog = setTimeout(() => {
  console.error(`e2e: gave up after ${TOTAL_TIMEOUT_MS} ms`);
  process.exit(1);
}, TOTAL_TIMEOUT_MS);

const profile = mkdtempSync(join(tmpdir(), "zocket-chat-e2e-"));
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

const pages = {};
const problems = [];

function step(message) {
  console.log(`e2e: ${message}`);
}

async function open(name) {
  const page = await context.newPage();
  page.on("pageerror", (err) => problems.push(`${name}: page error: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error") problems.push(`${name}: console error: ${msg.text()}`);
  });
  await page.goto(url);
  await page.fill("#name", name);
  await page.click("#connect");
  await page.locator("#status").filter({ hasText: `connected as ${name}` }).waitFor();
  pages[name] = page;
  step(`${name} connected (client id ${await page.getAttribute("#status", "data-client-id")})`);
  return page;
}

async function joinRoom(page, room) {
  await page.fill("#room", room);
  await page.click("#join");
  await page.locator("#current-room").filter({ hasText: `#${room}` }).waitFor();
}

async function memberNames(page) {
  return page.locator('#members [data-testid="member"]').evaluateAll((nodes) =>
    nodes.map((n) => n.dataset.userName),
  );
}

async function waitForMembers(page, expected) {
  const want = JSON.stringify([...expected].sort());
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  let got;
  while (Date.now() < deadline) {
    got = JSON.stringify((await memberNames(page)).sort());
    if (got === want) return;
    await page.waitForTimeout(50);
  }
  throw new Error(`member list: expected ${want}, got ${got}`);
}

let failed = false;
try {
  const room = "e2e-room";
  const alice = await open("Alice");
  const bob = await open("Bob");
  await joinRoom(alice, room);
  await joinRoom(bob, room);
  step(`both joined #${room}`);

  // Member lists, on both pages, through the chat.members event.
  await waitForMembers(alice, ["Alice", "Bob"]);
  await waitForMembers(bob, ["Alice", "Bob"]);
  step("member lists show Alice and Bob");

  // Presence: Alice saw Bob arrive.
  await alice
    .locator('#messages [data-testid="system-message"]')
    .filter({ hasText: `Bob joined #${room}` })
    .waitFor();

  // Typing indicator: Bob types, Alice sees it; Bob's page ignores its own event.
  await bob.click("#text");
  await bob.keyboard.type("Hello from B", { delay: 20 });
  await alice.locator("#typing").filter({ hasText: "Bob is typing" }).waitFor();
  if ((await bob.textContent("#typing")).trim() !== "") {
    throw new Error(`Bob's own page shows a typing indicator: ${await bob.textContent("#typing")}`);
  }
  step("Alice sees that Bob is typing");

  // Room message: Bob sends, Alice's page shows it (and the typing line clears).
  await bob.keyboard.type("ob!");
  await bob.click("#send");
  const received = alice
    .locator('#messages [data-testid="message"]')
    .filter({ hasText: "Hello from Bob!" });
  await received.waitFor();
  const from = await received.getAttribute("data-from");
  const line = (await received.innerText()).replace(/\s+/g, " ");
  if (from !== "Bob" || !line.includes("Bob:")) throw new Error(`message shown as "${line}" from ${from}`);
  await bob.locator('#messages [data-testid="message"]').filter({ hasText: "Hello from Bob!" }).waitFor();
  await alice.waitForFunction(() => document.getElementById("typing").textContent.trim() === "");
  if ((await bob.inputValue("#text")) !== "") throw new Error("Bob's message field was not cleared");
  step(`Alice's page shows: ${line.trim()}`);

  // Private message: Alice picks Bob from her member list and writes privately.
  await alice.click('#members [data-testid="member"][data-user-name="Bob"]');
  const target = await alice.inputValue("#private-to");
  const bobId = await bob.getAttribute("#status", "data-client-id");
  if (target !== bobId) throw new Error(`clicking Bob selected ${target}, expected ${bobId}`);
  await alice.fill("#private-text", "Just between us, Bob");
  await alice.click("#private-send");
  const pm = bob.locator('#privates [data-testid="private-received"]').filter({ hasText: "Just between us, Bob" });
  await pm.waitFor();
  if ((await pm.getAttribute("data-from")) !== "Alice") throw new Error("private message not from Alice");
  await alice.locator('#privates [data-testid="private-sent"]').filter({ hasText: "Just between us, Bob" }).waitFor();
  // It is not a room message.
  const leaked = await bob.locator('#messages [data-testid="message"]').filter({ hasText: "Just between us" }).count();
  if (leaked !== 0) throw new Error("the private message appeared in the room");
  step("Bob received Alice's private message");

  // Room isolation: Bob switches rooms; Alice's next message does not reach him.
  await joinRoom(bob, "elsewhere");
  await waitForMembers(alice, ["Alice"]);
  await alice.fill("#text", "Anyone left?");
  await alice.click("#send");
  await alice.locator('#messages [data-testid="message"]').filter({ hasText: "Anyone left?" }).waitFor();
  await bob.fill("#text", "Now in elsewhere");
  await bob.click("#send");
  await bob.locator('#messages [data-testid="message"]').filter({ hasText: "Now in elsewhere" }).waitFor();
  if ((await bob.locator('#messages [data-testid="message"]').filter({ hasText: "Anyone left?" }).count()) !== 0) {
    throw new Error("a message of the old room reached Bob");
  }
  step("rooms are isolated");

  if (problems.length) throw new Error(problems.join("\n"));

  // Put Bob back for the picture, then take it.
  await joinRoom(bob, room);
  await waitForMembers(alice, ["Alice", "Bob"]);
  mkdirSync(dirname(screenshot), { recursive: true });
  await alice.screenshot({ path: screenshot, fullPage: true });
  const bobShot = screenshot.replace(/\.png$/, "") + "-bob.png";
  await bob.screenshot({ path: bobShot, fullPage: true });
  step(`screenshots: ${screenshot} (Alice), ${bobShot} (Bob)`);
  console.log("e2e: OK");
} catch (err) {
  failed = true;
  console.error(`e2e: FAILED: ${err.stack || err}`);
  for (const p of problems) console.error(`e2e: ${p}`);
  try {
    mkdirSync(dirname(screenshot), { recursive: true });
    for (const [name, page] of Object.entries(pages)) {
      const path = screenshot.replace(/\.png$/, "") + `-failure-${name}.png`;
      await page.screenshot({ path, fullPage: true });
      console.error(`e2e: failure screenshot: ${path}`);
    }
  } catch (shotErr) {
    console.error(`e2e: could not take failure screenshots: ${shotErr.message}`);
  }
} finally {
  await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
  clearTimeout(watchdog);
}
process.exit(failed ? 1 : 0);
