// End-to-end test of the chat example in a real browser (Debian's headless Chromium,
// driven by playwright-core, which never downloads a browser of its own).
//
//   node examples/chat/browser/chat_e2e.mjs <page url> [screenshot.png]
//
// Two pages with different user names join the same room; one types (the other shows
// the typing indicator), sends a message (the other shows it), and a private message
// goes the other way. Rooms are isolated; joining the room one is in keeps the history;
// two users with the same name are told apart; a message the server rejects shows its
// error. Then the server is killed (SIGKILL) and, later, stopped gracefully (SIGINT) and
// restarted on the same port each time: both pages say they are reconnecting, disable
// Send and Join, show nobody "left", reconnect by themselves, re-join, show the right
// member lists and chat again. A reload keeps the name, the room and the history.
//
// The server process belongs to the caller: for each restart this script prints
// `e2e: control: kill|stop|start` and waits for one line on stdin once it is done.
//
// Exit code 0 on success; on failure the reason is printed and a screenshot of each
// page is written next to the requested one (`*-failure-*.png`). Usually run by
// `cargo test -p zocket-example-chat --test browser`.

import { mkdirSync, rmSync } from "node:fs";
import { createInterface } from "node:readline";
import { dirname, resolve } from "node:path";
import { STEP_TIMEOUT_MS, joinRoom, launch, privateMessage, step, waitForMembers } from "./common.mjs";

const TOTAL_TIMEOUT_MS = 150_000;
// Reconnecting waits for the restart and the page's backoff (at most a few seconds).
const RECONNECT_TIMEOUT_MS = 30_000;

const url = process.argv[2];
const screenshot = resolve(process.argv[3] || "target/chat-e2e.png");
if (!url) {
  console.error("usage: node chat_e2e.mjs <page url> [screenshot.png]");
  process.exit(2);
}
const { context, profile, watchdog } = await launch("zocket-chat-e2e-", TOTAL_TIMEOUT_MS);

const pages = {};
const problems = [];

async function open(name, key = name) {
  const page = await context.newPage();
  page.on("pageerror", (err) => problems.push(`${key}: page error: ${err.message}`));
  page.on("console", (msg) => {
    // A WebSocket that cannot connect while the server is down is logged by the browser
    // itself as a console error; that is expected during the restarts.
    if (msg.type() === "error" && !/WebSocket connection to .* failed/.test(msg.text())) {
      problems.push(`${key}: console error: ${msg.text()}`);
    }
  });
  await page.goto(url);
  await page.fill("#name", name);
  await page.click("#connect");
  await page.locator("#status").filter({ hasText: `connected as ${name}` }).waitFor();
  pages[key] = page;
  step(`${key} connected (client id ${await page.getAttribute("#status", "data-client-id")})`);
  return page;
}

async function waitForState(page, wanted, timeout = STEP_TIMEOUT_MS) {
  await page.locator(`#status[data-state="${wanted}"]`).waitFor({ timeout });
}

async function messages(page) {
  return page.locator('#messages [data-testid="message"] .text').allInnerTexts();
}

async function systemLines(page) {
  return page.locator('#messages [data-testid="system-message"]').allInnerTexts();
}

async function send(page, text) {
  await page.fill("#text", text);
  await page.click("#send");
}

async function seesMessage(page, text, timeout = STEP_TIMEOUT_MS) {
  await page.locator('#messages [data-testid="message"]').filter({ hasText: text }).first().waitFor({ timeout });
}

// The caller's answers to `e2e: control: ...`, one line each.
const stdinLines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function control(command) {
  console.log(`e2e: control: ${command}`);
  const { value, done } = await stdinLines.next();
  if (done) throw new Error(`no answer to control command ${command}`);
  if (value.trim() !== "done") throw new Error(`control ${command} failed: ${value}`);
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
  await seesMessage(bob, "Hello from Bob!");
  await alice.waitForFunction(() => document.getElementById("typing").textContent.trim() === "");
  if ((await bob.inputValue("#text")) !== "") throw new Error("Bob's message field was not cleared");
  step(`Alice's page shows: ${line.trim()}`);

  // Private message: Alice picks Bob from her member list and writes privately.
  await privateMessage(alice, bob, "Just between us, Bob");
  // It is not a room message.
  const leaked = await bob.locator('#messages [data-testid="message"]').filter({ hasText: "Just between us" }).count();
  if (leaked !== 0) throw new Error("the private message appeared in the room");
  step("Bob received Alice's private message");

  // Room isolation: Bob switches rooms; Alice's next message does not reach him.
  await joinRoom(bob, "elsewhere");
  await waitForMembers(alice, ["Alice"]);
  await send(alice, "Anyone left?");
  await seesMessage(alice, "Anyone left?");
  await send(bob, "Now in elsewhere");
  await seesMessage(bob, "Now in elsewhere");
  if ((await bob.locator('#messages [data-testid="message"]').filter({ hasText: "Anyone left?" }).count()) !== 0) {
    throw new Error("a message of the old room reached Bob");
  }
  step("rooms are isolated");

  // Back to the room: its history is still there (kept per room).
  await joinRoom(bob, room);
  await waitForMembers(alice, ["Alice", "Bob"]);
  await seesMessage(bob, "Hello from Bob!");

  // Joining the room one is in already changes nothing and wipes nothing.
  const before = await messages(alice);
  await alice.click("#join");
  await waitForMembers(alice, ["Alice", "Bob"]);
  const after = await messages(alice);
  if (JSON.stringify(before) !== JSON.stringify(after) || !after.includes("Hello from Bob!")) {
    throw new Error(`joining the current room changed the history: ${JSON.stringify(before)} -> ${JSON.stringify(after)}`);
  }
  step("joining the room one is in keeps the history");

  // Two users named Alice: Bob's page tells them apart.
  const alice2 = await open("Alice", "Alice (second tab)");
  await joinRoom(alice2, room);
  await waitForMembers(bob, ["Alice", "Alice", "Bob"]);
  const labels = await bob.locator('#members [data-testid="member"][data-user-name="Alice"]').evaluateAll((nodes) =>
    nodes.map((n) => n.dataset.label),
  );
  if (labels.length !== 2 || labels[0] === labels[1] || !labels.every((l) => /^Alice #[0-9a-f]{4}$/.test(l))) {
    throw new Error(`two Alices are not told apart on Bob's page: ${JSON.stringify(labels)}`);
  }
  await send(alice2, "I am the other Alice");
  const other = bob.locator('#messages [data-testid="message"]').filter({ hasText: "I am the other Alice" });
  await other.waitFor();
  const alice2Id = await alice2.getAttribute("#status", "data-client-id");
  const shownTag = (await other.locator(".tag").innerText()).trim();
  if (shownTag !== `#${alice2Id.slice(0, 4)}`) throw new Error(`the other Alice's message is tagged "${shownTag}"`);
  step(`same-name users are distinguished: ${labels.join(" / ")}`);
  await alice2.close();
  delete pages["Alice (second tab)"];
  await waitForMembers(bob, ["Alice", "Bob"]);
  const plain = await bob.locator('#members [data-testid="member"][data-user-name="Alice"]').getAttribute("data-label");
  if (plain !== "Alice") throw new Error(`with one Alice left she is shown as "${plain}"`);
  // Her line keeps its tag: on Alice's own page it must not look like her own message.
  const keptTag = (await alice.locator('#messages [data-testid="message"]').filter({ hasText: "I am the other Alice" }).locator(".tag").innerText()).trim();
  if (keptTag !== shownTag) throw new Error(`after the other Alice left, her line is tagged "${keptTag}" on Alice's page`);

  // A message the server rejects: the page says why and keeps the text.
  const tooLong = "x".repeat(2001);
  await send(bob, tooLong);
  await bob.locator("#error").filter({ hasText: "at most 2000 characters" }).waitFor();
  if ((await bob.inputValue("#text")) !== tooLong) throw new Error("the rejected text was not kept in the field");
  const rejectedError = (await bob.textContent("#error")).trim();
  step(`a rejected message shows: ${rejectedError}`);
  await bob.fill("#text", "");

  // Server restarts: first killed outright (no close frames), then stopped gracefully.
  let n = 0;
  for (const how of ["kill", "stop"]) {
    n += 1;
    const ids = { Alice: await alice.getAttribute("#status", "data-client-id"), Bob: await bob.getAttribute("#status", "data-client-id") };
    const seen = { Alice: (await systemLines(alice)).length, Bob: (await systemLines(bob)).length };
    await control(how);
    for (const [name, page] of [["Alice", alice], ["Bob", bob]]) {
      await waitForState(page, "reconnecting");
      await page.locator('[data-testid="connection-banner"]').filter({ hasText: "Reconnecting" }).waitFor();
      for (const button of ["#send", "#join"]) {
        if (!(await page.isDisabled(button))) throw new Error(`${name}: ${button} is enabled while disconnected`);
      }
    }
    if (n === 1) {
      await alice.screenshot({ path: screenshot.replace(/\.png$/, "") + "-reconnecting.png", fullPage: true });
    }
    step(`restart ${n} (${how}): both pages say they are reconnecting, Send and Join disabled`);
    await control("start");
    for (const [name, page] of [["Alice", alice], ["Bob", bob]]) {
      await waitForState(page, "connected", RECONNECT_TIMEOUT_MS);
      const id = await page.getAttribute("#status", "data-client-id");
      if (id === ids[name]) throw new Error(`${name} kept the client id of the old server`);
      if (!(await page.locator("#current-room").innerText()).includes(room)) throw new Error(`${name} is not back in #${room}`);
    }
    await waitForMembers(alice, ["Alice", "Bob"], RECONNECT_TIMEOUT_MS);
    await waitForMembers(bob, ["Alice", "Bob"], RECONNECT_TIMEOUT_MS);
    for (const [name, page, other] of [["Alice", alice, "Bob"], ["Bob", bob, "Alice"]]) {
      const lines = (await systemLines(page)).slice(seen[name]);
      if (lines.some((l) => l.includes(`${other} left`))) {
        throw new Error(`${name}'s page says ${other} left although the server went down: ${JSON.stringify(lines)}`);
      }
      if (!(await messages(page)).includes("Hello from Bob!")) throw new Error(`${name}'s history was lost in the restart`);
      if (await page.isDisabled("#send")) throw new Error(`${name}: Send still disabled after reconnecting`);
    }
    await send(alice, `Back after restart ${n}`);
    await seesMessage(bob, `Back after restart ${n}`);
    await send(bob, `Welcome back ${n}`);
    await seesMessage(alice, `Welcome back ${n}`);
    step(`restart ${n} (${how}): both pages reconnected by themselves, re-joined #${room}, members right, chatting again`);
  }

  // A reload keeps the name, the room and the history.
  await alice.reload();
  await waitForState(alice, "connected");
  if ((await alice.textContent("#status")).trim() !== "connected as Alice") throw new Error("the reload lost the name");
  if (!(await alice.locator("#current-room").innerText()).includes(room)) throw new Error("the reload lost the room");
  const kept = await messages(alice);
  if (!kept.includes("Hello from Bob!") || !kept.includes("Welcome back 2")) throw new Error(`the reload lost the history: ${JSON.stringify(kept)}`);
  await waitForMembers(alice, ["Alice", "Bob"]);
  await waitForMembers(bob, ["Alice", "Bob"]);
  await send(bob, "Still here after your reload");
  await seesMessage(alice, "Still here after your reload");
  step("a reload keeps the name, the room and the history");

  if (problems.length) throw new Error(problems.join("\n"));

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
      const path = screenshot.replace(/\.png$/, "") + `-failure-${name.replace(/\W+/g, "_")}.png`;
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
