// Reads the approval and hold cards of the inbox in Debian's headless
// chromium, as an approver sees them, and reports what each shows: the
// agent, operator, tenant and working directory, a file write's diff and
// content, the command behind an egress request, the session's last
// actions and alerts, what a held session did, and whether anything made
// the page wider than the window. Run by the Go test TestBrowserCards.
//
// Environment: INBOX_URL, INBOX_TOKEN, SCREENSHOT, CARD_IDS (comma-separated
// approval ids), HOLD_SESSION, DECIDED_ID (a decided request to find in
// "Recently decided"), CHROMIUM (default /usr/bin/chromium).
// Output: one line "RESULT {json}".
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const url = process.env.INBOX_URL;
const token = process.env.INBOX_TOKEN;
const shot = process.env.SCREENSHOT;
const ids = (process.env.CARD_IDS || "").split(",").filter(Boolean);
const holdSession = process.env.HOLD_SESSION || "";
const decidedID = process.env.DECIDED_ID || "";
if (!url || !token || !shot || ids.length === 0) {
  console.error("INBOX_URL, INBOX_TOKEN, SCREENSHOT and CARD_IDS are required");
  process.exit(2);
}

const profile = mkdtempSync(join(tmpdir(), "inbox-cards-"));
const result = { ok: false, cards: {}, console_errors: [] };
let ctx;
const txt = async (loc) => (await loc.count()) ? ((await loc.first().textContent()) || "").trim() : "";
const items = async (loc) => (await loc.allTextContents()).map((s) => s.replace(/\s+/g, " ").trim());
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
  page.on("console", (m) => { if (m.type() === "error") result.console_errors.push(m.text()); });
  page.on("pageerror", (e) => result.console_errors.push(String(e)));

  await page.goto(url);
  await page.fill("#token", token);
  await page.click("#login button[type=submit]");
  await page.waitForSelector("#inbox:not([hidden])");
  for (const id of ids) {
    const card = page.locator(`#pending article.card[data-id="${id}"]`);
    await card.waitFor({ state: "visible" });
    result.cards[id] = {
      agent: await txt(card.locator(".agent")),
      operator: await txt(card.locator(".operator")),
      tenant: await txt(card.locator(".tenant")),
      cwd: await txt(card.locator(".cwd")),
      preview_visible: await card.locator(".preview").isVisible(),
      preview_facts: await txt(card.locator(".preview-facts")),
      diff: await txt(card.locator(".diff")),
      diff_added: await items(card.locator(".diff .add")),
      diff_removed: await items(card.locator(".diff .del")),
      content: await card.locator(".content").textContent(),
      cause_visible: await card.locator(".cause").isVisible(),
      cause: await txt(card.locator(".cause-command")),
      actions: await items(card.locator(".actions-list li")),
      alerts_visible: await card.locator(".session-alerts").isVisible(),
      alerts: await items(card.locator(".alerts-list li")),
      requested: await txt(card.locator(".requested")),
    };
  }
  if (holdSession) {
    const hold = page.locator(`#holds article.card[data-session="${holdSession}"]`);
    await hold.waitFor({ state: "visible" });
    result.hold = {
      operator: await txt(hold.locator(".operator")),
      actions: await items(hold.locator(".actions-list li")),
      alerts: await items(hold.locator(".alerts-list li")),
    };
  }
  if (decidedID) {
    const row = page.locator("#decided tr", { hasText: decidedID });
    await row.first().waitFor({ state: "visible" });
    result.decided_row_height = (await row.first().boundingBox()).height;
  }
  result.page_text = await page.evaluate(() => document.body.innerText);
  result.scroll_width = await page.evaluate(() => document.documentElement.scrollWidth);
  result.client_width = await page.evaluate(() => document.documentElement.clientWidth);
  await page.screenshot({ path: shot, fullPage: true });
  result.ok = true;
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  console.log("RESULT " + JSON.stringify(result));
  if (ctx) await ctx.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
process.exit(result.ok ? 0 : 1);
