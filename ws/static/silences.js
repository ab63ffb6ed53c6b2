// The officers' silences panel: the active silences (GET /api/silences, refreshed every
// 15 s and after each silence command), each with its time left counted from the feed's
// event time (`now` of the reply) and an end button; and a form to set one: one grid,
// source or kind (`contract.silence.match`), for at most `contract.silence.max_s`, with a
// reason. Commands go through the link as any other (target "silence").
import { t } from "./i18n.js";
import { uuid } from "./net.js";
import { durationOptions } from "./held.js";

const REFRESH_MS = 15000;

function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The id of the silence a `silence` command sets, as the gateway and the worker derive
 * it (schemas/commands.py `silence_id_of`): "si-" and its command id's first 12 hex digits. */
export function silenceIdOf(commandId) {
  return "si-" + commandId.replace(/-/g, "").slice(0, 12).toLowerCase();
}

function left(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/**
 * Mount the panel in `box`.
 * @param {object} opts link (the gateway link), contract, grids() (grid ids to suggest)
 * @returns {{refresh, result, relabel}}
 */
export function mountSilences(box, { link, contract, grids = () => [] }) {
  const rules = contract.silence;
  let data = { now: Date.now() / 1000, silences: [] };
  let fetchedAt = Date.now() / 1000;
  box.innerHTML = `<div class="panel-head"><h2 class="sil-title"></h2><span class="sil-count"></span></div>
    <ol class="sil-list"></ol>
    <form class="sil-form" autocomplete="off">
      <select name="match"></select><input name="value" list="sil-grids" required maxlength="200">
      <datalist id="sil-grids"></datalist>
      <select name="for"></select>
      <input name="reason" required maxlength="500"><button type="submit" class="primary"></button>
    </form>`;
  const form = box.querySelector("form");
  const list = box.querySelector(".sil-list");

  function drawForm() {
    box.querySelector(".sil-title").textContent = t("sil_title");
    const match = form.match.value || rules.match[0];
    form.match.innerHTML = rules.match.map((m) => `<option value="${m}">${t("sil_" + m)}</option>`).join("");
    form.match.value = match;
    const forS = Number(form.for.value) || 3600;
    form.for.innerHTML = durationOptions(rules.max_s, forS);
    form.for.title = t("sil_for");
    form.value.placeholder = t("sil_value");
    form.reason.placeholder = t("sil_reason");
    form.querySelector("button").textContent = t("sil_add");
  }

  function draw() {
    // Time left: the reply's event time, moved on by the wall clock since it was read.
    const now = data.now + (Date.now() / 1000 - fetchedAt);
    box.querySelector(".sil-count").textContent = data.silences.length ? String(data.silences.length) : "";
    list.innerHTML = data.silences.length ? data.silences.map((s) => `<li data-silence="${esc(s.id)}">
        <span class="what"><b>${esc(t("sil_" + s.match))}</b> ${esc(s.value)}</span>
        <span class="left">${esc(t("sil_left", { t: left(s.ends_at - now) }))}</span>
        <span class="held">${esc(t("sil_held", { n: s.held ?? 0 }))}</span>
        <button type="button" data-end="${esc(s.id)}">${t("sil_end")}</button>
        <small class="why">${esc(t("sil_by", { who: s.actor }))}: ${esc(s.reason)}</small></li>`).join("")
      : `<li class="hint">${t("sil_none")}</li>`;
  }

  let inFlight = null;
  let again = false;
  function refresh() {
    // Asked again while reading (a command applied meanwhile): read once more after.
    if (inFlight) { again = true; return inFlight; }
    inFlight = fetch("/api/silences", { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : null))
      .then((body) => {
        if (body) { data = body; fetchedAt = Date.now() / 1000; draw(); }
      })
      .catch(() => {})
      .finally(() => { inFlight = null; if (again) { again = false; refresh(); } });
    return inFlight;
  }

  form.match.addEventListener("change", () => {
    form.value.setAttribute("list", form.match.value === "grid" ? "sil-grids" : "");
  });
  form.value.addEventListener("focus", () => {
    const dl = box.querySelector("#sil-grids");
    if (!dl.children.length) dl.innerHTML = grids().map((g) => `<option value="${esc(g)}">`).join("");
  });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const value = form.value.value.trim();
    const reason = form.reason.value.trim();
    const forS = Number(form.for.value);
    if (!value || !reason || !(forS > 0 && forS <= rules.max_s)) { form.reportValidity(); return; }
    const commandId = uuid();
    link.command({ command_id: commandId, target: "silence", id: silenceIdOf(commandId),
                   action: "silence", note: reason,
                   params: { [form.match.value]: value, for_s: forS } });
    form.value.value = "";
    form.reason.value = "";
  });
  list.addEventListener("click", (ev) => {
    const id = ev.target.dataset.end;
    if (!id) return;
    ev.target.disabled = true;
    link.command({ target: "silence", id, action: "end_silence", note: "" });
  });

  drawForm();
  draw();
  refresh();
  setInterval(refresh, REFRESH_MS);
  setInterval(draw, 30000);  // the time left runs down between reads
  return {
    refresh,
    get silences() { return data.silences; },
    result(res) {
      if (res.action === "silence" || res.action === "end_silence") refresh();
    },
    relabel() { drawForm(); draw(); },
  };
}
