// Drives the approvals inbox in Debian's headless chromium, as an approver
// would: log in with a token, wait for a pending request to arrive live
// (no reload), check what it shows, approve it with a comment, and keep a
// screenshot. Run by the Go test TestBrowserInbox*, which talks to it over
// stdin/stdout:
//
//   script → "LOGGED_IN"          the inbox is open and its live stream connected
//   test   → "<approval id>\n"    the request to answer, raised after login
//   script → "RESULT {json}"      what it saw and did
//
// Environment: INBOX_URL, INBOX_TOKEN, SCREENSHOT (path of the .png),
// CHROMIUM (default /usr/bin/chromium), COMMENT, SCOPE (once|session).
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const url = process.env.INBOX_URL;
const token = process.env.INBOX_TOKEN;
const shot = process.env.SCREENSHOT;
const comment = process.env.COMMENT || "checked the manifest; ok to apply";
const scope = process.env.SCOPE || "once";
if (!url || !token || !shot) {
  console.error("INBOX_URL, INBOX_TOKEN and SCREENSHOT are required");
  process.exit(2);
}

const lines = createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve, reject) => {
  lines.once("line", resolve);
  lines.once("close", () => reject(new Error("stdin closed")));
});

const profile = mkdtempSync(join(tmpdir(), "inbox-chromium-"));
const result = { ok: false, screenshot: shot, urls_with_token: [], console_errors: [] };
let ctx;
try {
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1280, height: 1000 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = ctx.pages()[0] || await ctx.newPage();
  page.setDefaultTimeout(30000);
  page.on("request", (req) => { if (req.url().includes(token)) result.urls_with_token.push(req.url()); });
  page.on("console", (m) => { if (m.type() === "error") result.console_errors.push(m.text()); });
  page.on("pageerror", (e) => result.console_errors.push(String(e)));

  await page.goto(url);
  await page.fill("#token", token);
  await page.click("#login button[type=submit]");
  await page.waitForSelector("#inbox:not([hidden])");
  await page.waitForSelector("#live.on");
  result.approver = (await page.textContent("#approver")).trim();
  console.log("LOGGED_IN");

  const id = (await nextLine()).trim();
  result.approval_id = id;
  // The request must appear through the live stream, without a reload.
  const card = page.locator(`#pending article.card[data-id="${id}"]`);
  await card.waitFor({ state: "visible" });
  result.shown = {
    summary: (await card.locator(".summary").textContent()).trim(),
    rule: (await card.locator(".rule").textContent()).trim(),
    risk: (await card.locator(".risk").textContent()).trim(),
    requester: (await card.locator(".requester").textContent()).trim(),
    session: (await card.locator(".session").textContent()).trim(),
    reason: (await card.locator(".reason").textContent()).trim(),
    subject: (await card.locator(".subject").textContent()).trim(),
    countdown: (await card.locator(".countdown").textContent()).trim(),
  };
  await card.locator(".comment").fill(comment);
  await card.locator(".scope").selectOption(scope);
  await page.screenshot({ path: shot, fullPage: true });
  await card.locator("button.approve").click();
  await page.waitForSelector(`#pending article.card[data-id="${id}"]`, { state: "detached" });
  result.notice = (await page.textContent("#notice")).trim();
  const row = page.locator("#decided tr", { hasText: id });
  await row.first().waitFor({ state: "visible" });
  result.decided_row = (await row.first().textContent()).trim();
  await page.screenshot({ path: shot.replace(/\.png$/, "-decided.png"), fullPage: true });
  result.session_storage_token = await page.evaluate(() => sessionStorage.getItem("approvals.token") !== null);
  result.cookies = (await ctx.cookies()).length;
  result.ok = true;
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  console.log("RESULT " + JSON.stringify(result));
  if (ctx) await ctx.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
  lines.close();
}
process.exit(result.ok ? 0 : 1);
