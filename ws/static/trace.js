// Trace lookup (出入留痕) for duty officers and admins: a panel over the wall screen.
// A lookup needs a reason and is audited by the gateway (POST /api/trace); admins also
// see the audit (GET /api/trace/audit). Who may do what comes from /api/me ("trace"),
// never guessed here. The gateway's refusals (400, 403, 429) are shown as they come:
// the server decides, this page only says it in the user's language.
import { applyLabels, lang, t } from "./i18n.js";

const OPTS = { credentials: "same-origin" };

const PANEL = `
<div class="panel-head"><h2 data-i18n="trace_title"></h2>
  <button type="button" id="trace-close" data-i18n="trace_close"></button></div>
<form id="trace-form" class="trace-form" autocomplete="off" novalidate>
  <label><span data-i18n="trace_person"></span>
    <input id="trace-person" name="person" maxlength="400" data-i18n-ph="trace_person_ph"></label>
  <label><span data-i18n="trace_reason"></span>
    <textarea id="trace-reason" name="reason" rows="2" data-i18n-ph="trace_reason_ph"></textarea></label>
  <button type="submit" id="trace-submit" class="primary" data-i18n="trace_submit"></button>
</form>
<p class="hint" data-i18n="trace_notice"></p>
<p id="trace-msg" class="trace-msg" role="alert" hidden></p>
<p id="trace-summary" class="trace-summary"></p>
<div class="trace-scroll"><table id="trace-rows" class="trace-table" hidden>
  <thead><tr><th data-i18n="trace_time"></th><th data-i18n="trace_checkpoint"></th>
    <th data-i18n="grid"></th><th data-i18n="trace_code"></th><th data-i18n="trace_direction"></th>
    <th data-i18n="trace_event"></th></tr></thead><tbody></tbody></table></div>
<section id="trace-audit" class="trace-audit" hidden>
  <div class="panel-head"><h3 data-i18n="trace_audit"></h3>
    <button type="button" id="trace-audit-refresh" data-i18n="trace_audit_refresh"></button></div>
  <p id="trace-audit-none" class="hint" data-i18n="trace_audit_none" hidden></p>
  <div class="trace-scroll"><table id="trace-audit-rows" class="trace-table">
    <thead><tr><th data-i18n="trace_time"></th><th data-i18n="trace_actor"></th>
      <th data-i18n="trace_person"></th><th data-i18n="trace_reason"></th>
      <th data-i18n="trace_rows"></th><th data-i18n="trace_via"></th></tr></thead>
    <tbody></tbody></table></div>
</section>`;

const STAMPS = {};
/** An ISO time as "MM-DD HH:mm" (zh) or "DD/MM HH:mm" (en) on the screen's clock. */
function stamp(iso) {
  const code = lang() === "en" ? "en-GB" : "zh-CN";
  const fmt = STAMPS[code] || (STAMPS[code] = new Intl.DateTimeFormat(code, {
    month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" }));
  const when = new Date(iso);
  return Number.isNaN(when.getTime()) ? String(iso) : fmt.format(when);
}

function label(prefix, value) {
  const key = `${prefix}_${value}`;
  const text = t(key);
  return text === key ? String(value ?? "") : text;
}

function fill(tbody, rows, cells) {
  tbody.replaceChildren(...rows.map((row) => {
    const tr = document.createElement("tr");
    for (const [text, cls] of cells(row)) {
      const td = document.createElement("td");
      td.textContent = text;
      if (cls) td.className = cls;
      tr.append(td);
    }
    return tr;
  }));
}

function mount(me) {
  const rights = me.trace;
  const open = document.createElement("button");
  open.type = "button";
  open.id = "trace-open";
  open.dataset.i18n = "trace_open";
  document.getElementById("lang").before(open);

  const panel = document.createElement("section");
  panel.id = "trace";
  panel.className = "trace-panel panel";
  panel.hidden = true;
  panel.innerHTML = PANEL;
  document.body.append(panel);
  const $ = (sel) => panel.querySelector(sel);
  let result = null;   // the last lookup's reply
  let audit = null;    // the last audit list
  let error = null;    // [code, message] of the last refusal

  function drawResult() {
    const table = $("#trace-rows");
    const summary = $("#trace-summary");
    if (!result) { table.hidden = true; summary.textContent = ""; return; }
    const days = result.days;
    summary.textContent = result.rows.length
      ? t("trace_found", { person: result.person, n: result.rows.length, days })
        + (result.truncated ? t("trace_truncated", { n: result.rows.length }) : "")
      : t("trace_none", { days });
    table.hidden = result.rows.length === 0;
    fill(table.tBodies[0], result.rows, (r) => [
      [stamp(r.ts)], [r.checkpoint_id], [r.grid_id || "-"],
      [label("code", r.code_color), `code code-${r.code_color}`], [label("dir", r.direction)],
      [r.event_id, "dim"]]);
  }

  function drawError() {
    const msg = $("#trace-msg");
    msg.hidden = !error;
    if (!error) return;
    const [code, message] = error;
    const key = `trace_e_${code}`;
    const text = t(key, { max: rights.reason_max });
    msg.textContent = text === key ? `${t("trace_e_failed")}: ${message || code}` : text;
  }

  function drawAudit() {
    const rows = audit || [];
    $("#trace-audit-none").hidden = rows.length > 0;
    $("#trace-audit-rows").hidden = rows.length === 0;
    fill($("#trace-audit-rows").tBodies[0], rows, (a) => [
      [stamp(a.at)], [a.actor], [a.person], [a.reason, "reason"], [String(a.rows ?? "?")], [label("via", a.via)]]);
  }

  async function loadAudit() {
    if (!rights.audit) return;
    const reply = await fetch("/api/trace/audit?since=180d&limit=200", OPTS);
    if (reply.ok) { audit = (await reply.json()).rows; drawAudit(); }
  }

  async function lookup(event) {
    event.preventDefault();
    const body = JSON.stringify({ person: $("#trace-person").value.trim(), reason: $("#trace-reason").value });
    $("#trace-submit").disabled = true;
    try {
      const reply = await fetch("/api/trace", {
        ...OPTS, method: "POST", headers: { "Content-Type": "application/json" }, body });
      let data = {};
      try { data = await reply.json(); } catch { data = {}; }
      if (reply.ok) {
        result = data;
        error = null;
      } else {
        result = null;
        error = [data.error || (reply.status === 429 ? "rate_limited" : "failed"), data.message];
      }
    } catch (exc) {
      result = null;
      error = ["failed", String(exc)];
    } finally {
      $("#trace-submit").disabled = false;
    }
    drawError();
    drawResult();
    loadAudit();
  }

  function relabel() {
    applyLabels(panel);
    open.textContent = t("trace_open");
    drawResult();
    drawError();
    drawAudit();
  }

  open.addEventListener("click", () => {
    panel.hidden = !panel.hidden;
    if (!panel.hidden) { $("#trace-person").focus(); loadAudit(); }
  });
  $("#trace-close").addEventListener("click", () => { panel.hidden = true; });
  $("#trace-form").addEventListener("submit", lookup);
  $("#trace-audit-refresh").addEventListener("click", loadAudit);
  $("#trace-audit").hidden = !rights.audit;
  // The language toggle (app.js) sets <html lang>: follow it.
  new MutationObserver(relabel).observe(document.documentElement,
    { attributes: true, attributeFilter: ["lang"] });
  relabel();
  window.gridwatchTrace = { panel };  // for tests and debugging in the console
}

async function main() {
  const reply = await fetch("/api/me", OPTS);
  if (!reply.ok) return;
  const me = await reply.json();
  if (me.trace?.lookup) mount(me);
}

main();
