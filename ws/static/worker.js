// The grid worker's phone view (390x844): the on-duty switch (and, while off duty, a
// banner saying no new tasks come), my grids (band, score, open alerts, a small map),
// then my tasks, newest first, each with its place, its deadline counting down and
// what to do next. Commands typed while offline wait in the link's queue and go out on
// reconnect.
import { applyLabels, clock, lang, t } from "./i18n.js";
import { beep } from "./net.js";
import { allowedNow, leadsTo, needsNote, resultText, toast } from "./app.js";
import { myGrids } from "./mygrids.js";
import { taskNotifier } from "./notify.js";
import { DUTY_ACTIONS, dutySwitch } from "./duty.js";

// What a worker can do to a task in each status, and which action needs text, is the
// server's command contract (`contract`, from GET /api/contract); the text box's hint:
const PLACEHOLDER = { reject: "reason_placeholder", done: "done_placeholder" };
const ACTIVE = new Set(["offered", "accepted", "on_site"]);  // a deadline still matters
const SOON_S = 30 * 60;  // the countdown turns amber this close to the deadline

function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Seconds as h:mm:ss (hours unbounded). */
export function hms(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const pad = (n) => String(n).padStart(2, "0");
  return `${Math.floor(s / 3600)}:${pad(Math.floor(s / 60) % 60)}:${pad(s % 60)}`;
}

/**
 * A `geo:` URI (RFC 5870) opening the phone's own map app at a point, and the point as
 * plain "lat, lon" text for a phone without one (typed or pasted into any map app).
 * Nothing here names a map website: the page never sends a place off the device.
 */
export function geoLink(lon, lat) {
  const la = Number(lat).toFixed(6);
  const lo = Number(lon).toFixed(6);
  return { href: `geo:${la},${lo}?q=${la},${lo}`, text: `${la}, ${lo}` };
}

function finite(...xs) {
  return xs.every((x) => x !== null && x !== "" && Number.isFinite(Number(x)));
}

export function mount(root, { me, link, contract }) {
  root.innerHTML = `<section class="worker">
    <div id="duty" class="duty"></div>
    <p id="off-duty" class="off-duty" hidden></p>
    <div id="notify" class="notify"></div>
    <div id="my-grids" class="my-grids"></div>
    <h2 data-i18n="my_tasks"></h2>
    <p id="offline" class="offline" hidden data-i18n="queued_offline"></p>
    <ol id="tasks" class="tasks"></ol></section>`;
  const tasks = new Map();
  const alerts = new Map();
  const panel = myGrids(root.querySelector("#my-grids"), { me, alerts });
  const notifier = taskNotifier(root.querySelector("#notify"));
  const duty = dutySwitch(root.querySelector("#duty"), root.querySelector("#off-duty"),
    { me, link, onChange: () => draw() });
  applyLabels(root);
  const optimistic = new Map();  // task id -> status shown while the command is on its way
  let open = null;  // {id, action} of the form being filled
  let welcomed = false;
  let live = false;  // false while the first snapshot arrives: its tasks are not news

  function mine(task) {
    return me.user.grids.includes(task.grid_id) || (task.workers || []).includes(me.user.name);
  }

  // Where a task is: the spot its alert was raised at (a checkpoint, a camera's zone),
  // else a point inside its grid.
  function placeOf(task) {
    const d = alerts.get(task.alert_id)?.details;
    if (d && finite(d.lon, d.lat)) return [Number(d.lon), Number(d.lat)];
    return panel.place(task.grid_id);
  }

  function placeHtml(task) {
    const p = placeOf(task);
    if (!p) return "";
    const geo = geoLink(p[0], p[1]);
    return `<div class="place"><a class="geo" href="${esc(geo.href)}">${t("open_in_maps")}</a>
      <span class="coords" title="${t("coords_hint")}">${esc(geo.text)}</span></div>`;
  }

  function tick() {
    const now = Date.now() / 1000;
    root.querySelectorAll("#tasks .countdown[data-due]").forEach((el) => {
      const left = Number(el.dataset.due) - now;
      el.textContent = left >= 0 ? t("time_left", { t: hms(left) }) : t("overdue_by", { t: hms(-left) });
      el.className = `countdown${left < 0 ? " overdue" : left < SOON_S ? " soon" : ""}`;
    });
  }
  setInterval(tick, 1000);

  function draw() {
    const list = root.querySelector("#tasks");
    // Frames keep arriving while a note is typed: carry the text over the redraw.
    const typing = list.querySelector("#text");
    const typed = typing ? typing.value : "";
    const focused = typing && document.activeElement === typing;
    const rows = [...tasks.values()].filter(mine).sort((a, b) => b.ts_created - a.ts_created);
    root.querySelector("#offline").hidden = !(link.pending().length && !link.online());
    if (!rows.length) { list.innerHTML = `<li class="hint">${t("no_tasks")}</li>`; return; }
    list.innerHTML = rows.map((task) => {
      const status = optimistic.get(task.id) || task.status;
      const alert = alerts.get(task.alert_id);
      const title = alert ? (lang() === "en" ? alert.title : alert.title_zh || alert.title) : task.alert_id;
      const form = open && open.id === task.id
        ? `<div class="form"><textarea id="text" rows="3" placeholder="${t(PLACEHOLDER[open.action] || "reason_placeholder")}"></textarea>
           <button data-send="${open.action}" class="primary">${t("send")}</button>
           <button data-cancel="1">${t("cancel")}</button></div>` : "";
      const queued = link.pending().some((c) => c.target === "task" && c.id === task.id);
      // Off duty, an offered task is shown but cannot be accepted (the worker refuses it).
      const resting = status === "offered" && !duty.on();
      const actions = allowedNow(contract, "task", status, me.user.role)
        .filter((a) => !(resting && a === "accept"));
      return `<li class="task st-${status}" data-id="${esc(task.id)}">
        <div class="row"><b>${esc(title)}</b><span class="status">${t("st_" + status)}</span></div>
        <div class="meta">${t("grid")} ${esc(panel.name(task.grid_id))} · ${clock(task.ts_created)} · ${t("due")} ${clock(task.due_at)}</div>
        ${ACTIVE.has(status) && finite(task.due_at) ? `<div class="countdown" data-due="${Number(task.due_at)}"></div>` : ""}
        ${placeHtml(task)}
        ${task.note ? `<div class="note">${esc(task.note)}</div>` : ""}
        ${queued ? `<div class="queued">${t("queued_offline")}</div>` : ""}
        ${resting ? `<div class="off-duty-note">${t("off_duty_no_accept")}</div>` : ""}
        <div class="actions">${actions.map((a) => `<button data-action="${a}" class="act-${a}">${t("act_" + a)}</button>`).join("")}</div>
        ${form}</li>`;
    }).join("");
    const text = list.querySelector("#text");
    if (text && typed) text.value = typed;
    if (text && focused) text.focus();
    tick();
  }

  duty.refresh();  // the state on load (and after each reconnect, below)

  let gridTimer = null;
  function scheduleGrids() {
    // Grid deltas arrive up to 10 a second: redraw the panel at most once a second.
    if (!gridTimer) gridTimer = setTimeout(() => { gridTimer = null; panel.draw(); }, 1000);
  }

  function send(id, action, note) {
    optimistic.set(id, leadsTo(contract, "task", action));
    link.command({ target: "task", id, action, note });
    open = null;
    draw();
  }

  root.querySelector("#tasks").addEventListener("click", (ev) => {
    const li = ev.target.closest("li[data-id]");
    if (!li) return;
    const { action, send: sendAction, cancel } = ev.target.dataset;
    if (cancel) { open = null; draw(); return; }
    if (sendAction) {
      const text = li.querySelector("#text").value.trim();
      if (!text) { toast(t(sendAction === "reject" ? "r_note_required" : "note_required"), true); return; }
      send(li.dataset.id, sendAction, text);
      return;
    }
    if (!action) return;
    if (needsNote(contract, "task", action)) {
      const typing = root.querySelector("#text");
      if (typing) typing.value = "";  // a new form starts empty
      open = { id: li.dataset.id, action }; draw();
      root.querySelector("#text")?.focus();  // the redraw replaced li: look it up again
      return;
    }
    send(li.dataset.id, action, "");
  });

  function upsert(task) {
    const before = tasks.get(task.id);
    if (before && before.ts_updated > task.ts_updated) return;
    tasks.set(task.id, task);
    if (optimistic.get(task.id) === task.status) optimistic.delete(task.id);
    if (!before && live && mine(task) && task.status === "offered") {
      beep({ high: true });
      const alert = alerts.get(task.alert_id);
      const title = alert ? (lang() === "en" ? alert.title : alert.title_zh || alert.title) : "";
      notifier.tell(`${t("new_task")} · ${panel.name(task.grid_id)}`,
        [title, task.note].filter(Boolean).join(" — ") || t("new_task"), task.id);
      toast(t("new_task"));
    }
  }

  return {
    frame(f) {
      // After a reconnect the tasks not seen before are news (the phone may have been in
      // a pocket while the link was down); only the page's first snapshot is not.
      if (f.op === "welcome") { if (!welcomed) setTimeout(() => { live = true; }, 1500); welcomed = true; return; }
      if (f.ch === "grids") {
        panel.grids(f);
        if (f.snapshot) panel.draw(); else scheduleGrids();
        return;
      }
      if (f.ch === "tasks") (f.snapshot ? f.items : [f.m.task]).forEach((x) => x && upsert(x));
      else if (f.ch === "alerts") {
        if (f.snapshot) alerts.clear();
        (f.snapshot ? f.items : [f.m.alert]).forEach((a) => a && alerts.set(a.id, a));
        panel.draw();
      } else return;
      draw();
    },
    status(s) {
      // The duty may have changed while the link was down: read it again.
      if (s === "resumed") duty.refresh(); else duty.relabel();
      draw();
    },
    result(res) {
      const text = `${t("act_" + res.action)} · ${resultText(res)}`;
      if (DUTY_ACTIONS.has(res.action)) {
        duty.note(text, res.ok === false);
        duty.result(res);
      } else if (res.ok === false) optimistic.delete(res.id);
      toast(text, res.ok === false);
      draw();
    },
    relabel() { applyLabels(root); duty.relabel(); notifier.relabel(); panel.draw(); draw(); },
  };
}
