// Approvals inbox. No build step, no dependencies. Every value from the
// server is put into the page with textContent, never as HTML. The token
// lives in this tab's sessionStorage and travels only in the Authorization
// header; live updates are read with fetch() streaming for that reason
// (EventSource cannot set headers).
"use strict";

(function () {
  const TOKEN_KEY = "approvals.token";
  let token = sessionStorage.getItem(TOKEN_KEY) || "";
  let me = null;
  let streamAbort = null;
  let reloadTimer = null;
  let retryTimer = null;

  const $ = (id) => document.getElementById(id);

  class APIError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path, opts = {}) {
    const headers = { Accept: "application/json", Authorization: "Bearer " + token };
    const init = { method: opts.method || "GET", headers, cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer" };
    if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(opts.body);
    }
    const resp = await fetch(path, init);
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    if (!resp.ok) {
      const err = (data && data.error) || {};
      if (resp.status === 401) logout("Your token was not accepted.");
      throw new APIError(resp.status, err.code || "http_" + resp.status, err.message || resp.statusText);
    }
    return data;
  }

  function text(el, v) { el.textContent = v === undefined || v === null || v === "" ? "—" : String(v); }
  // A missing time (absent, the zero time, the epoch) shows as a dash,
  // never as 0001-01-01 or 1970-01-01.
  function when(ts) {
    const ms = ts ? Date.parse(ts) : NaN;
    return ms > 0 ? new Date(ms).toLocaleString() : "";
  }
  function agentName(a) { return a ? a.name + (a.version ? " " + a.version : "") : ""; }
  function el(tag, cls, txt) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (txt !== undefined) e.textContent = txt;
    return e;
  }
  // commandOf is a tool_call.requested payload as a person reads it.
  function commandOf(p) {
    const a = (p && p.arguments) || {};
    const what = a.command || (a.argv ? a.argv.join(" ") : "") || a.path || a.url || "";
    return (p && p.tool_name ? p.tool_name + " " : "") + what;
  }

  // fillSession shows a session's last actions and its alerts in card.
  function fillSession(card, s) {
    const q = (sel) => card.querySelector(sel);
    const actions = (s && s.last_actions) || [];
    q(".actions-list").replaceChildren(...actions.map((a) => {
      const li = el("li", "action");
      li.dataset.type = a.event_type;
      li.appendChild(el("span", "at", when(a.event_time) + " "));
      li.appendChild(el("span", "text", a.text));
      if (a.outcome) li.appendChild(el("span", "outcome outcome-" + a.outcome.replace(/\s.*/, ""), a.outcome));
      return li;
    }));
    q(".actions-empty").hidden = actions.length > 0;
    const alerts = (s && s.alerts) || [];
    q(".alerts-list").replaceChildren(...alerts.map((a) => {
      const li = el("li", "session-alert");
      li.appendChild(el("span", "outcome outcome-" + a.severity, a.severity));
      li.appendChild(el("span", "text", " " + a.rule_id + ": " + a.message + " (" + a.count + "×, " + when(a.event_time) + ")"));
      return li;
    }));
    q(".session-alerts").hidden = alerts.length === 0;
  }

  // fillPreview shows a file write's facts, diff and new content.
  function fillPreview(card, p) {
    const box = card.querySelector(".preview");
    box.hidden = !p;
    if (!p) return;
    const facts = [p.path, p.content_length + " bytes", "sha256 " + p.content_sha256.slice(0, 12)];
    if (p.new_file) facts.push("new file");
    if (p.binary) facts.push("binary: not shown");
    if (p.truncated) facts.push("cut to its bound");
    if (p.redacted) facts.push(p.redacted + " secret(s) redacted");
    card.querySelector(".preview-facts").textContent = "(" + facts.join(", ") + ")";
    const diff = card.querySelector(".diff");
    diff.replaceChildren(...(p.diff || "").split("\n").filter((l, i, all) => i < all.length - 1 || l !== "").map((l) => {
      const cls = l.startsWith("@@") ? "hunk" : l.startsWith("+") && !l.startsWith("+++") ? "add" : l.startsWith("-") && !l.startsWith("---") ? "del" : "ctx";
      return el("span", cls, l + "\n");
    }));
    card.querySelector(".diff-box").hidden = !p.diff;
    card.querySelector(".content").textContent = p.content || "";
    card.querySelector(".content-box").hidden = !p.content;
  }
  function actor(a) { return a ? a.type + ":" + a.id : ""; }

  function notice(msg) { text($("notice"), msg); if (!msg) $("notice").textContent = ""; }

  // --- login ---------------------------------------------------------------

  async function login(t) {
    token = t;
    try {
      me = await api("/api/v1/me");
    } catch (e) {
      token = "";
      sessionStorage.removeItem(TOKEN_KEY);
      $("login-error").textContent = e.status === 429 ? "Too many failed attempts; wait and try again." : "Token not accepted.";
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    $("login-error").textContent = "";
    $("token").value = "";
    $("login-panel").hidden = true;
    $("inbox").hidden = false;
    $("who").hidden = false;
    $("approver").textContent = (me.name || me.id) + " (" + me.groups.join(", ") + ")";
    await reload();
    stream();
  }

  function logout(msg) {
    token = "";
    me = null;
    sessionStorage.removeItem(TOKEN_KEY);
    if (streamAbort) streamAbort.abort();
    streamAbort = null;
    clearTimeout(retryTimer);
    $("inbox").hidden = true;
    $("who").hidden = true;
    $("login-panel").hidden = false;
    $("login-error").textContent = msg || "";
    for (const id of ["pending", "holds", "alerts", "decided"]) $(id).replaceChildren();
    if (window.inboxTriage) window.inboxTriage.clear();
  }

  // --- live updates ----------------------------------------------------------

  function setLive(on) {
    const el = $("live");
    el.className = "live " + (on ? "on" : "off");
    el.textContent = on ? "live" : "reconnecting";
  }

  async function stream() {
    if (!token) return;
    if (streamAbort) streamAbort.abort();
    const ctl = new AbortController();
    streamAbort = ctl;
    try {
      const resp = await fetch("/api/v1/events", {
        headers: { Accept: "text/event-stream", Authorization: "Bearer " + token },
        cache: "no-store", credentials: "omit", signal: ctl.signal,
      });
      if (resp.status === 401) { logout("Your token was not accepted."); return; }
      if (!resp.ok || !resp.body) throw new Error("stream " + resp.status);
      const reader = resp.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          onFrame(buf.slice(0, cut));
          buf = buf.slice(cut + 2);
        }
      }
    } catch (e) {
      if (ctl.signal.aborted) return;
    }
    if (streamAbort !== ctl || !token) return;
    setLive(false);
    retryTimer = setTimeout(stream, 2000);
  }

  function onFrame(frame) {
    let event = "message";
    const data = [];
    for (const line of frame.split("\n")) {
      if (line.startsWith(":")) continue;
      const i = line.indexOf(":");
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    if (event === "hello") {
      setLive(true);
      scheduleReload();
    } else if (event === "change" || event === "alert") {
      scheduleReload();
    }
  }

  function scheduleReload() {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(() => { reload().catch(() => {}); }, 80);
  }

  // --- rendering ---------------------------------------------------------------

  // placeChildren makes box's children exactly nodes, in order, moving only
  // the nodes that are out of place: a node that stays where it is keeps the
  // focus and the caret, so a live refresh never eats what someone is typing.
  function placeChildren(box, nodes) {
    nodes.forEach((n, i) => {
      if (box.children[i] !== n) box.insertBefore(n, box.children[i] || null);
    });
    while (box.children.length > nodes.length) box.lastElementChild.remove();
  }

  async function reload() {
    const [pending, holds, alerts, all] = await Promise.all([
      api("/api/v1/requests?status=pending"),
      api("/api/v1/holds"),
      api("/api/v1/alerts?limit=50"),
      api("/api/v1/requests?limit=40"),
    ]);
    renderPending(pending);
    renderHolds(holds);
    renderAlerts(alerts);
    renderDecided(all.filter((r) => r.status !== "pending").slice(0, 20));
    // Alert triage lives in triage.js.
    if (window.inboxTriage) await window.inboxTriage.reload({ api, notice, when, text, el, row, reload, placeChildren });
  }

  function renderPending(list) {
    // Keep what an approver is typing: cards that stay are updated in place.
    const box = $("pending");
    const keep = new Map();
    for (const card of box.children) keep.set(card.dataset.id, card);
    const cards = list.map((r) => {
      const card = keep.get(r.id) || requestCard(r);
      fillRequest(card, r);
      return card;
    });
    placeChildren(box, cards);
    $("pending-count").textContent = String(list.length);
    $("pending-empty").hidden = list.length > 0;
    tick();
  }

  function requestCard(r) {
    const card = $("request-card").content.firstElementChild.cloneNode(true);
    card.dataset.id = r.id;
    const scope = card.querySelector(".scope");
    for (const s of r.scopes) {
      const o = document.createElement("option");
      o.value = s;
      o.textContent = s === "once" ? "once (this call)" : "session (this rule, rest of session)";
      scope.appendChild(o);
    }
    card.querySelector(".approve").addEventListener("click", () => decide(card, "approve"));
    card.querySelector(".deny").addEventListener("click", () => decide(card, "deny"));
    return card;
  }

  function fillRequest(card, r) {
    const q = (sel) => card.querySelector(sel);
    text(q(".kind"), r.kind);
    text(q(".risk"), r.risk);
    q(".risk").className = "risk risk-" + r.risk;
    text(q(".summary"), r.summary);
    text(q(".reason"), r.reason);
    text(q(".rule"), r.rule_id);
    text(q(".reason-code"), r.reason_code);
    text(q(".requester"), actor(r.requester));
    text(q(".agent"), agentName(r.agent));
    text(q(".operator"), r.operator);
    text(q(".tenant"), r.tenant);
    text(q(".cwd"), r.cwd);
    text(q(".session"), r.tenant + " / " + r.session_id);
    text(q(".toolcall"), r.tool_call_id);
    text(q(".runner"), r.runner_id);
    text(q(".requested"), when(r.requested_at));
    text(q(".expires"), when(r.expires_at));
    text(q(".id"), r.id);
    const have = r.approvals.map((a) => a.approver.id + " (" + a.scope + ")");
    text(q(".approvals"), r.approvals.length + " of " + r.required_approvals + (have.length ? ": " + have.join(", ") : ""));
    q(".countdown").dataset.expires = r.expires_at;
    let subject;
    if (r.subject) {
      subject = r.subject.event_type + " " + r.subject.event_id + "\n" + JSON.stringify(r.subject.payload, null, 2);
    } else if (r.subject_event_id) {
      subject = "event " + r.subject_event_id + " (not in the service's recent window)";
    } else {
      subject = "(no subject event)";
    }
    q(".subject").textContent = subject;
    fillPreview(card, r.preview);
    q(".cause").hidden = !r.cause;
    if (r.cause) {
      q(".cause-command").textContent = commandOf(r.cause.payload) + "\n(tool call " + r.tool_call_id + ", event " + r.cause.event_id + ")";
    }
    fillSession(card, r.session);
    const busy = card.dataset.busy === "1";
    for (const b of card.querySelectorAll("button")) b.disabled = busy || !r.may_answer;
    if (!r.may_answer && r.refusal) {
      q(".refusal").textContent = "You may not answer this request: " + r.refusal;
    } else if (!busy) {
      q(".refusal").textContent = "";
    }
  }

  async function decide(card, decision) {
    const body = { decision };
    const comment = card.querySelector(".comment").value.trim();
    if (comment) body.comment = comment;
    if (decision === "approve") body.scope = card.querySelector(".scope").value;
    card.dataset.busy = "1";
    for (const b of card.querySelectorAll("button")) b.disabled = true;
    try {
      const out = await api("/api/v1/requests/" + encodeURIComponent(card.dataset.id) + "/decision", { method: "POST", body });
      notice(out.result === "partial"
        ? "Recorded your approval of " + card.dataset.id + "; a second approver is needed."
        : "Request " + card.dataset.id + " " + out.request.status + ".");
      card.dataset.busy = "";
      await reload();
    } catch (e) {
      card.dataset.busy = "";
      card.querySelector(".refusal").textContent = "Refused: " + e.code + " — " + e.message;
      for (const b of card.querySelectorAll("button")) b.disabled = false;
      // Another answer won (on this or another instance): the card leaves
      // the pending list on the next reload, so say it where it stays.
      if (e.code === "already_decided") notice("Your answer did not take effect: " + e.message);
    }
  }

  function renderHolds(list) {
    const box = $("holds");
    const keep = new Map();
    for (const card of box.children) keep.set(card.dataset.id, card);
    const cards = list.map((h) => {
      let card = keep.get(h.event_id);
      if (!card) {
        card = $("hold-card").content.firstElementChild.cloneNode(true);
        card.dataset.id = h.event_id;
        card.dataset.session = h.session_id;
        card.querySelector(".do-release").addEventListener("click", () => release(card));
      }
      const q = (sel) => card.querySelector(sel);
      text(q(".session"), h.tenant + " / " + h.session_id);
      text(q(".reason"), h.reason);
      text(q(".rule"), h.rule_id);
      text(q(".by"), actor(h.by));
      text(q(".at"), when(h.held_at));
      text(q(".alert"), h.alert ? h.alert.severity + " " + h.alert.rule_id + ": " + h.alert.message : h.alert_event_id);
      text(q(".operator"), h.session && h.session.operator);
      text(q(".agent"), h.session && agentName(h.session.agent));
      fillSession(card, h.session);
      return card;
    });
    placeChildren(box, cards);
    $("holds-count").textContent = String(list.length);
    $("holds-empty").hidden = list.length > 0;
  }

  async function release(card) {
    const body = { held_event_id: card.dataset.id };
    const reason = card.querySelector(".comment").value.trim();
    if (reason) body.reason = reason;
    card.querySelector(".do-release").disabled = true;
    try {
      await api("/api/v1/holds/" + encodeURIComponent(card.dataset.session) + "/release", { method: "POST", body });
      notice("Session " + card.dataset.session + " released.");
      await reload();
    } catch (e) {
      card.querySelector(".refusal").textContent = "Refused: " + e.code + " — " + e.message;
      card.querySelector(".do-release").disabled = false;
    }
  }

  // row builds a table row; a cell whose class is "clip" keeps its full
  // text in a tooltip and shows at most three lines.
  function row(cells, cls) {
    const tr = document.createElement("tr");
    cells.forEach((c, i) => {
      const td = document.createElement("td");
      const v = c === undefined || c === null ? "" : String(c);
      if (cls && cls[i] === "clip") {
        const d = el("div", "clip", v);
        d.title = v;
        td.appendChild(d);
      } else {
        td.textContent = v;
        if (cls && cls[i]) td.className = cls[i];
      }
      tr.appendChild(td);
    });
    return tr;
  }

  function renderAlerts(list) {
    $("alerts").replaceChildren(...list.map((a) =>
      row([when(a.event_time), a.severity, a.rule_id, a.session_id, a.count, a.action, a.message],
        [null, null, null, null, null, null, "clip"])));
    $("alerts-count").textContent = String(list.length);
  }

  function renderDecided(list) {
    $("decided").replaceChildren(...list.map((r) => {
      const f = r.final || {};
      return row([r.id, r.status, r.summary, actor(f.approver), f.scope, f.comment, when(f.decided_at)],
        [null, "status-" + r.status, "clip", null, null, "clip"]);
    }));
  }

  function tick() {
    const now = Date.now();
    for (const el of document.querySelectorAll("#pending .countdown")) {
      const left = Math.round((Date.parse(el.dataset.expires) - now) / 1000);
      if (left <= 0) {
        el.textContent = "expiring";
        el.classList.add("overdue");
      } else {
        const m = Math.floor(left / 60), s = left % 60;
        el.textContent = "expires in " + m + ":" + String(s).padStart(2, "0");
      }
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const t = $("token").value.trim();
      if (t) login(t);
    });
    $("logout").addEventListener("click", () => logout(""));
    setInterval(tick, 1000);
    if (token) login(token);
  });
})();
