// Triages an alert in the inbox in Debian's headless chromium: as an
// analyst with may_triage, acknowledge it, assign it, try a false positive
// without a comment (refused on the page), mark it a false positive with
// one; then as an analyst with may_suppress only, see the triage buttons
// disabled, suppress the alert's rule for its session and lift the
// suppression again. Run by the Go test TestBrowserTriage.
//
// Environment: INBOX_URL, TRIAGE_TOKEN, SUPPRESS_TOKEN, ALERT_ID,
// SCREENSHOT, CHROMIUM (default /usr/bin/chromium).
// Output: one line "RESULT {json}".
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const url = process.env.INBOX_URL;
const triageToken = process.env.TRIAGE_TOKEN;
const suppressToken = process.env.SUPPRESS_TOKEN;
const id = process.env.ALERT_ID;
const shot = process.env.SCREENSHOT;
if (!url || !triageToken || !suppressToken || !id || !shot) {
  console.error("INBOX_URL, TRIAGE_TOKEN, SUPPRESS_TOKEN, ALERT_ID and SCREENSHOT are required");
  process.exit(2);
}

const profile = mkdtempSync(join(tmpdir(), "inbox-triage-"));
const result = { ok: false, states: [], console_errors: [] };
let ctx;
const txt = async (loc) => (await loc.count()) ? ((await loc.first().textContent()) || "").trim() : "";
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

  const login = async (token) => {
    await page.goto(url);
    await page.fill("#token", token);
    await page.click("#login button[type=submit]");
    await page.waitForSelector("#inbox:not([hidden])");
  };
  const card = () => page.locator(`#triage-alerts article.alert-card[data-id="${id}"]`);
  const waitState = async (want) => {
    await page.waitForFunction(([sel, w]) => {
      const e = document.querySelector(sel);
      return e && e.textContent.trim() === w;
    }, [`#triage-alerts article.alert-card[data-id="${id}"] .triage-state`, want]);
    result.states.push(want);
  };

  await login(triageToken);
  await card().waitFor({ state: "visible" });
  result.initial_state = await txt(card().locator(".triage-state"));
  // Start typing the assignee, then acknowledge without moving the focus (as
  // a colleague's change would arrive): the live refreshes that follow must
  // leave the field focused, so the rest of the name lands in it.
  await card().locator(".assignee-input").focus();
  await page.keyboard.type("bo");
  await card().locator(".do-ack").evaluate((b) => b.click());
  await waitState("acknowledged");
  await page.waitForTimeout(500);
  await page.keyboard.type("b");
  result.typed_through_refresh = await card().locator(".assignee-input").inputValue();
  result.focus_kept = await card().locator(".assignee-input").evaluate((e) => document.activeElement === e);
  await card().locator(".do-assign").click();
  result.assign_refusal = await txt(card().locator(".refusal"));
  await page.waitForFunction((sel) => document.querySelector(sel)?.textContent.trim() === "bob",
    `#triage-alerts article.alert-card[data-id="${id}"] .assignee`);
  await card().locator(".do-fp").click();
  result.fp_refusal = await txt(card().locator(".refusal"));
  await card().locator(".comment").fill("a nightly backup to the package mirror");
  await card().locator(".do-fp").click();
  await waitState("false positive");
  result.assignee = await txt(card().locator(".assignee"));
  result.verdict = await txt(card().locator(".verdict"));
  result.history = (await card().locator(".triage-history li").allTextContents()).map((s) => s.trim());
  result.notice = await txt(page.locator("#notice"));
  await page.screenshot({ path: shot, fullPage: true });

  await page.click("#logout");
  await login(suppressToken);
  await card().waitFor({ state: "visible" });
  result.suppressor_no_rights = await card().locator(".no-rights").isVisible();
  result.suppressor_ack_disabled = await card().locator(".do-ack").isDisabled();
  await card().locator(".scope-kind").selectOption("session");
  await card().locator(".for").selectOption("4h");
  await card().locator(".comment").fill("backup window");
  await card().locator(".do-suppress").click();
  const supRow = page.locator("#suppressions tr").first();
  await supRow.waitFor({ state: "visible" });
  result.suppression_row = ((await supRow.textContent()) || "").replace(/\s+/g, " ").trim();
  await card().locator(".suppressed-note").waitFor({ state: "visible" });
  result.suppressed_note = await txt(card().locator(".suppressed-note"));
  await supRow.locator(".do-lift").click();
  await page.waitForFunction(() => document.querySelectorAll("#suppressions tr").length === 0);
  result.rows_after_lift = await page.locator("#suppressions tr").count();
  result.scroll_width = await page.evaluate(() => document.documentElement.scrollWidth);
  result.client_width = await page.evaluate(() => document.documentElement.clientWidth);
  result.ok = true;
} catch (e) {
  result.error = String(e && e.stack || e);
  try {
    const page = ctx && ctx.pages()[0];
    if (page) result.refusals = await page.locator("#triage-alerts .refusal").allTextContents();
  } catch (e2) { /* the page is gone */ }
} finally {
  console.log("RESULT " + JSON.stringify(result));
  if (ctx) await ctx.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
process.exit(result.ok ? 0 : 1);
