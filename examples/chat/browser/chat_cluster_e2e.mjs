// End-to-end test of the chat example across two processes on one Redis
// (`chat --redis URL`), in Debian's headless Chromium driven by playwright-core.
//
//   node examples/chat/browser/chat_cluster_e2e.mjs <page url A> <page url B> [screenshot.png]
//
// Alice's page talks to process A, Bob's to process B. Both join one room: each page's
// member list shows both (presence crosses processes), Alice sees Bob arrive and type,
// Bob's room message reaches Alice, Alice's private message (to Bob, picked from her
// member list) reaches Bob only, and when Bob leaves for another room Alice's member
// list and his messages follow. Exit code 0 on success. Usually run by
// `cargo test -p zocket-example-chat --test browser`.

import { mkdirSync, rmSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { joinRoom, launch, privateMessage, step, waitForMembers } from "./common.mjs";

const TOTAL_TIMEOUT_MS = 120_000;

const [urlA, urlB] = [process.argv[2], process.argv[3]];
const screenshot = resolve(process.argv[4] || "target/chat-cluster-e2e.png");
if (!urlA || !urlB) {
  console.error("usage: node chat_cluster_e2e.mjs <page url A> <page url B> [screenshot.png]");
  process.exit(2);
}
if (urlA === urlB) {
  console.error("the two pages must be served by two different processes");
  process.exit(2);
}
const { context, profile, watchdog } = await launch("zocket-chat-cluster-e2e-", TOTAL_TIMEOUT_MS);

const pages = {};
const problems = [];

async function open(name, url) {
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
  step(`${name} connected to ${url} (client id ${await page.getAttribute("#status", "data-client-id")})`);
  return page;
}

let failed = false;
try {
  const room = "cluster-room";
  const alice = await open("Alice", urlA);
  const bob = await open("Bob", urlB);
  await joinRoom(alice, room);
  await joinRoom(bob, room);
  step(`Alice (process A) and Bob (process B) joined #${room}`);

  await waitForMembers(alice, ["Alice", "Bob"]);
  await waitForMembers(bob, ["Alice", "Bob"]);
  step("both member lists show Alice and Bob across processes");

  await alice
    .locator('#messages [data-testid="system-message"]')
    .filter({ hasText: `Bob joined #${room}` })
    .waitFor();
  step("Alice saw Bob join on the other process");

  await bob.click("#text");
  await bob.keyboard.type("Hello across", { delay: 20 });
  await alice.locator("#typing").filter({ hasText: "Bob is typing" }).waitFor();
  step("Alice sees that Bob is typing on the other process");

  await bob.keyboard.type(" processes!");
  await bob.click("#send");
  const received = alice
    .locator('#messages [data-testid="message"]')
    .filter({ hasText: "Hello across processes!" });
  await received.waitFor();
  if ((await received.getAttribute("data-from")) !== "Bob") throw new Error("the message is not from Bob");
  await bob.locator('#messages [data-testid="message"]').filter({ hasText: "Hello across processes!" }).waitFor();
  if ((await alice.locator('#messages [data-testid="message"]').filter({ hasText: "Hello across processes!" }).count()) !== 1) {
    throw new Error("Alice's page shows Bob's message more than once");
  }
  step("Alice's page shows Bob's message once");

  await privateMessage(alice, bob, "Private, across processes");
  if ((await bob.locator('#messages [data-testid="message"]').filter({ hasText: "Private, across" }).count()) !== 0) {
    throw new Error("the private message appeared in the room");
  }
  step("Bob received Alice's private message across processes");

  await joinRoom(bob, "elsewhere");
  await waitForMembers(alice, ["Alice"]);
  await alice
    .locator('#messages [data-testid="system-message"]')
    .filter({ hasText: `Bob left #${room}` })
    .waitFor();
  await alice.fill("#text", "Anyone left?");
  await alice.click("#send");
  await alice.locator('#messages [data-testid="message"]').filter({ hasText: "Anyone left?" }).waitFor();
  await bob.fill("#text", "Now in elsewhere");
  await bob.click("#send");
  await bob.locator('#messages [data-testid="message"]').filter({ hasText: "Now in elsewhere" }).waitFor();
  if ((await bob.locator('#messages [data-testid="message"]').filter({ hasText: "Anyone left?" }).count()) !== 0) {
    throw new Error("a message of the old room reached Bob");
  }
  step("Bob's leave crossed processes and rooms stay isolated");

  if (problems.length) throw new Error(problems.join("\n"));
  mkdirSync(dirname(screenshot), { recursive: true });
  await alice.screenshot({ path: screenshot, fullPage: true });
  step(`screenshot: ${screenshot} (Alice)`);
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
