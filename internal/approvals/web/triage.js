// Alert triage in the approvals inbox: one card per recent alert with its
// triage state, where an analyst acknowledges, assigns, marks a true or
// false positive (a false positive needs a comment), comments, or
// suppresses the alert's rule for a scope and a time; and the list of
// active suppressions, each of which can be lifted. app.js calls
// inboxTriage.reload with its API function and helpers after every change.
// Every value from the server is put into the page with textContent.
"use strict";

window.inboxTriage = (function () {
  const $ = (id) => document.getElementById(id);
  let h = null; // app.js's helpers: api, notice, when, text, el, row, reload, placeChildren

  const STATE = { true_positive: "true positive", false_positive: "false positive" };

  function stateOf(a) {
    const t = a.triage;
    if (!t) return "new";
    if (t.verdict) return t.verdict;
    return "acknowledged";
  }

  function alertCard(a) {
    const card = $("alert-card").content.firstElementChild.cloneNode(true);
    card.dataset.id = a.event_id;
    const act = (cls, action) => card.querySelector(cls).addEventListener("click", () => triage(card, action));
    act(".do-ack", "acknowledge");
    act(".do-assign", "assign");
    act(".do-tp", "true_positive");
    act(".do-fp", "false_positive");
    act(".do-comment", "comment");
    card.querySelector(".do-suppress").addEventListener("click", () => suppress(card));
    card.querySelector(".scope-kind").addEventListener("change", () => scopeHint(card));
    return card;
  }

  function scopeHint(card) {
    const kind = card.querySelector(".scope-kind").value;
    card.querySelector(".scope-value").hidden = kind !== "agent";
  }

  function fillAlert(card, a) {
    const q = (sel) => card.querySelector(sel);
    const t = a.triage || {};
    card.dataset.session = a.session_id;
    card.dataset.groupKey = a.group_key || "";
    card.dataset.tenant = a.tenant;
    h.text(q(".rule"), a.rule_id);
    h.text(q(".severity"), a.severity);
    q(".severity").className = "severity risk risk-" + a.severity;
    const state = stateOf(a);
    h.text(q(".triage-state"), STATE[state] || state);
    q(".triage-state").className = "triage-state state-" + state;
    h.text(q(".message"), a.message);
    h.text(q(".session"), a.tenant + " / " + a.session_id);
    h.text(q(".group-key"), a.group_key);
    h.text(q(".count"), a.count);
    h.text(q(".raised"), h.when(a.event_time));
    h.text(q(".assignee"), t.assignee);
    h.text(q(".verdict"), t.verdict ? (STATE[t.verdict] || t.verdict) + " by " + t.verdict_by : "");
    q(".suppressed-note").hidden = !a.suppressed_by;
    h.text(q(".suppressed-by"), a.suppressed_by);
    const hist = t.history || [];
    q(".triage-history").replaceChildren(...hist.map((n) => {
      const li = h.el("li", "", h.when(n.at) + " " + n.by.id + ": " + n.action +
        (n.assignee ? " → " + n.assignee : "") + (n.comment ? " — " + n.comment : ""));
      return li;
    }));
    q(".history").hidden = hist.length === 0;
    for (const b of card.querySelectorAll("form.triage .buttons button")) b.disabled = !a.may_triage;
    q(".do-suppress").disabled = !a.may_suppress;
    q(".no-rights").hidden = a.may_triage;
  }

  async function triage(card, action) {
    const body = { action };
    const comment = card.querySelector(".comment").value.trim();
    if (comment) body.comment = comment;
    if (action === "assign") body.assignee = card.querySelector(".assignee-input").value.trim();
    const refusal = card.querySelector(".refusal");
    refusal.textContent = "";
    if (action === "false_positive" && !comment) {
      refusal.textContent = "A false positive needs a comment: say why it is not a threat.";
      return;
    }
    try {
      await h.api("/api/v1/alerts/" + encodeURIComponent(card.dataset.id) + "/triage", { method: "POST", body });
      card.querySelector(".comment").value = "";
      h.notice("Alert " + card.dataset.id + ": " + (STATE[action] || action) + ".");
      await h.reload();
    } catch (e) {
      refusal.textContent = "Refused: " + e.code + " — " + e.message;
    }
  }

  async function suppress(card) {
    const kind = card.querySelector(".scope-kind").value;
    let value = card.querySelector(".scope-value").value.trim();
    if (kind === "session") value = card.dataset.session;
    if (kind === "group_key") value = card.dataset.groupKey;
    if (kind === "tenant") value = card.dataset.tenant;
    const comment = card.querySelector(".comment").value.trim();
    const refusal = card.querySelector(".refusal");
    refusal.textContent = "";
    if (!comment) {
      refusal.textContent = "A suppression needs a comment: say why the rule may be quiet.";
      return;
    }
    const body = { alert_event_id: card.dataset.id, scope: { kind, value }, for: card.querySelector(".for").value, comment };
    try {
      const out = await h.api("/api/v1/suppressions", { method: "POST", body });
      card.querySelector(".comment").value = "";
      h.notice("Rule " + out.suppression.rule_id + " suppressed for " + kind + " " + value + ".");
      await h.reload();
    } catch (e) {
      refusal.textContent = "Refused: " + e.code + " — " + e.message;
    }
  }

  async function lift(id, btn) {
    btn.disabled = true;
    try {
      await h.api("/api/v1/suppressions/" + encodeURIComponent(id) + "/lift", { method: "POST", body: {} });
      h.notice("Suppression " + id + " lifted.");
      await h.reload();
    } catch (e) {
      h.notice("Refused: " + e.code + " — " + e.message);
      btn.disabled = false;
    }
  }

  function renderAlerts(list) {
    // Keep what an analyst is typing: cards that stay are updated in place.
    const box = $("triage-alerts");
    const keep = new Map();
    for (const card of box.children) keep.set(card.dataset.id, card);
    const cards = list.map((a) => {
      const card = keep.get(a.event_id) || alertCard(a);
      fillAlert(card, a);
      return card;
    });
    h.placeChildren(box, cards);
    $("triage-count").textContent = String(list.filter((a) => !a.triage).length);
    $("triage-empty").hidden = list.length > 0;
  }

  function renderSuppressions(list) {
    $("suppressions").replaceChildren(...list.map((s) => {
      const tr = h.row([s.rule_id, s.tenant, s.scope.kind + " = " + s.scope.value, h.when(s.expires_at), s.by.id, s.comment],
        [null, null, "clip", null, null, "clip"]);
      tr.dataset.id = s.event_id;
      const td = document.createElement("td");
      const b = h.el("button", "do-lift", "Lift");
      b.type = "button";
      b.addEventListener("click", () => lift(s.event_id, b));
      td.appendChild(b);
      tr.appendChild(td);
      return tr;
    }));
    $("suppressions-empty").hidden = list.length > 0;
  }

  return {
    async reload(helpers) {
      h = helpers;
      const [alerts, sups] = await Promise.all([
        h.api("/api/v1/triage/alerts?limit=50"),
        h.api("/api/v1/suppressions"),
      ]);
      renderAlerts(alerts);
      renderSuppressions(sups);
    },
    clear() {
      $("triage-alerts").replaceChildren();
      $("suppressions").replaceChildren();
    },
  };
})();
