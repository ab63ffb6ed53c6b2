// The duty officer's wall screen (1920x1080): alert feed, risk map, grid detail, counters.
import { applyLabels, clock, has, lang, t } from "./i18n.js";
import * as feed from "./feed.js";
import { drawTools } from "./feed_tools.js";
import { Sounds } from "./sound.js";
import { mountWall } from "./wall.js";
import { BAND_COLOUR, NO_DATA, areaColour } from "./bands.js";
import { allowedNow, needsNote, resultText, toast } from "./app.js";
import { askShelve, exportHref, heldStates, today } from "./held.js";
import { mountSilences } from "./silences.js";
import { mountDutyBoard } from "./dutyboard.js";

const FEED_ROWS = 200;
// Each counter says its window (now, today, all time): which counter has which comes from
// the gateway with the numbers (ws/counters.py), never guessed here.

const TEMPLATE = `
<section class="officer">
  <div class="wall panel" id="wall">
    <div class="clock"><b id="clock"></b><small id="clock-day"></small></div>
    <div class="health" id="health"></div>
    <button type="button" id="duty-board" class="chip duty-chip" hidden></button>
    <div class="sound">
      <button type="button" id="sound-on" data-i18n="sound_enable"></button>
      <button type="button" id="mute"></button></div>
  </div>
  <div class="counters" id="counters"></div>
  <div class="left">
  <div class="feed panel">
    <div class="panel-head"><h2 data-i18n="alerts"></h2>
      <span class="filters">
        <button data-hours="1" data-i18n="last_1h"></button>
        <button data-hours="6" data-i18n="last_6h"></button>
        <button data-hours="24" data-i18n="last_24h" class="on"></button>
      </span></div>
    <div class="feed-tools">
      <select id="f-kind"></select><select id="f-status"></select><select id="f-street"></select>
      <button type="button" id="f-grid" class="chip" hidden></button>
      <input id="f-q" type="search" autocomplete="off" data-i18n-ph="search_grid">
    </div>
    <div class="feed-more">
      <button type="button" id="held" class="chip"></button><span class="spacer"></span>
      <input type="date" id="x-from"><span>–</span><input type="date" id="x-to">
      <a id="export" class="button" download data-i18n="export_csv"></a>
    </div>
    <ol id="alerts" class="alerts"></ol>
  </div>
  <div class="panel silences" id="silences"></div>
  </div>
  <div class="map panel"><div class="panel-head"><h2 data-i18n="map_title"></h2>
    <span class="legend">
      <i style="background:${BAND_COLOUR.red}"></i><span data-i18n="band_red"></span>
      <i style="background:${BAND_COLOUR.yellow}"></i><span data-i18n="band_yellow"></span>
      <i style="background:${BAND_COLOUR.blue}"></i><span data-i18n="band_blue"></span>
      <i style="background:${NO_DATA}"></i><span data-i18n="band_none"></span>
      <span class="shade-hint">· <span data-i18n="shade_hint"></span></span></span></div>
    <div id="map" class="chart"></div></div>
  <div class="trends panel" id="trends">
    <div id="trend-scans" class="chart"></div><div id="trend-kinds" class="chart"></div>
    <div id="trend-open" class="chart"></div></div>
  <div class="side">
    <div class="panel detail" id="alert-detail"><p class="hint" data-i18n="select_alert"></p></div>
    <div class="panel detail" id="grid-detail"><p class="hint" data-i18n="select_grid"></p></div>
    <div class="panel top10"><div class="panel-head"><h2 data-i18n="top_title"></h2>
      <small class="window" data-i18n="w_now"></small></div><ol id="top-grids" class="top-grids"></ol></div>
  </div>
</section>`;

function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// What an officer can do to an alert in each status, and which action needs a note, is
// the server's command contract (`contract`, from GET /api/contract).
export function mount(root, { me, link, contract }) {
  root.innerHTML = TEMPLATE;
  applyLabels(root);
  const alerts = new Map();     // id -> alert record
  const tasks = new Map();      // id -> task record
  const risk = new Map();       // grid id -> {score, band, contributions, counts, ts}
  let counters = {};
  let hours = 24;
  let selected = null;
  let selectedGrid = null;
  let live = false;             // no sound for the snapshot, only for what arrives live
  let gridNames = new Map();
  const chart = echarts.init(root.querySelector("#map"), null, { renderer: "canvas" });

  fetch("/api/grids.geojson", { credentials: "same-origin" }).then((r) => r.json()).then((geo) => {
    echarts.registerMap("grids", geo);
    gridNames = new Map(geo.features.map((f) => [f.properties.id, f.properties]));
    drawMap();
    drawFeed();
  });
  chart.on("click", (p) => selectGrid(p.name));
  new ResizeObserver(() => chart.resize()).observe(root.querySelector("#map"));

  let mapTimer = null;
  function drawMap() {
    if (!gridNames.size) return;
    const data = [...gridNames.keys()].map((id) => {
      const r = risk.get(id);
      return { name: id, value: r ? r.score : null,
               itemStyle: { areaColor: areaColour(r) } };
    });
    chart.setOption({
      tooltip: { formatter: (p) => {
        const props = gridNames.get(p.name) || {};
        const r = risk.get(p.name);
        return `${esc(lang() === "en" ? props.name : props.name_zh)}<br>${t("score")}: ${r ? r.score : "-"}`;
      } },
      series: [{ type: "map", map: "grids", nameProperty: "id", roam: true, data,
                 itemStyle: { borderColor: "#0b1f33", borderWidth: 0.5 },
                 emphasis: { label: { show: false }, itemStyle: { areaColor: "#a78bfa" } },
                 select: { disabled: true }, label: { show: false } }],
    });
  }
  function scheduleMap() {
    // Grid deltas arrive up to 10 a second; redraw the 800-polygon map at most once.
    if (!mapTimer) mapTimer = setTimeout(() => { mapTimer = null; drawMap(); }, 1000);
  }

  // Held alerts (silenced, shelved) are out of the live feed: counted on the "held"
  // chip, which shows them (alone) while it is on.
  const held = heldStates(contract);
  let showHeld = false;
  function visible(a) {
    if (held.has(a.status) !== showHeld) return false;
    return showHeld || a.ts_raised >= Date.now() / 1000 - hours * 3600 || a.status === "new";
  }
  const openStates = new Set(contract.alert.open);
  const expanded = new Set();  // incident ids shown with their alerts
  const filters = { kind: "", status: "", street: "", grid: "", q: "" };

  function gridLabel(id) {
    const props = gridNames.get(id);
    if (!props) return id || "";
    return `${id} ${lang() === "en" ? props.name : props.name_zh}`;
  }
  function alertRow(a, level) {
    const raised = level > 0 && a.status === "new";
    return `<li data-id="${esc(a.id)}" data-level="${level}" class="alert sev-${a.severity} st-${a.status}${raised ? " escalated" : ""}${a.id === selected ? " selected" : ""}">
        <span class="sev">${t("sev_" + a.severity)}</span>
        <span class="title">${level > 0 ? `<b class="esc">${t("escalated_level", { n: level })}</b>` : ""}${esc(lang() === "en" ? a.title : a.title_zh || a.title)}</span>
        <span class="meta">${esc(a.grid_id ? gridLabel(a.grid_id) : a.station_id || "")} · ${clock(a.ts_raised)}</span>
        <span class="status">${t("st_" + a.status)}${mayShelve && a.status === "new"
          ? `<button type="button" class="row-shelve" data-shelve="${esc(a.id)}">${t("act_shelve")}</button>` : ""}${mayUnshelve && a.status === "shelved"
          ? `<button type="button" class="row-unshelve" data-unshelve="${esc(a.id)}"${a.held_until ? ` title="${esc(t("shelved_until", { t: clock(a.held_until) }))}"` : ""}>${t("act_unshelve")}</button>` : ""}</span>
        ${a.needs_officer ? `<b class="no-duty" title="${esc(a.needs_officer)}">${t("no_one_on_duty")}</b>` : ""}</li>`;
  }
  function alertVersion(a, level) {
    return `${a.ts_updated}|${a.status}|${level}|${a.id === selected}|${a.needs_officer || ""}`;
  }
  const mayShelve = allowedNow(contract, "alert", "new", me.user.role).includes("shelve");
  // A shelved alert is taken off the shelf from its row (in the held list) as from its
  // detail panel: the contract's unshelve, audited with who and when by the worker.
  const mayUnshelve = allowedNow(contract, "alert", "shelved", me.user.role).includes("unshelve");
  const mayAckIncident = allowedNow(contract, "incident", "open", me.user.role).includes("ack");
  function incidentRow(inc) {
    const open = expanded.has(inc.id);
    const ack = mayAckIncident && inc.unacknowledged > 0
      ? `<button type="button" class="act-ack" data-incident-ack="${esc(inc.id)}">${t("ack_incident", { n: inc.unacknowledged })}</button>` : "";
    return `<li class="incident sev-${inc.severity}${open ? " open" : ""}${inc.level > 0 && inc.unacknowledged ? " escalated" : ""}" data-incident="${esc(inc.id)}" data-level="${inc.level}">
        <div class="inc-head"><button type="button" class="expand" data-expand="${esc(inc.id)}" aria-expanded="${open}">${open ? "▾" : "▸"}</button>
        <span class="sev">${t("sev_" + inc.severity)}</span>
        <span class="title">${inc.level > 0 ? `<b class="esc">${t("escalated_level", { n: inc.level })}</b>` : ""}<b>${t("incident")}</b> ${esc(gridLabel(inc.grid_id))}
          · ${t("incident_of", { n: inc.alerts.length })}${inc.unacknowledged ? ` · ${t("incident_new", { n: inc.unacknowledged })}` : ""}</span>${ack}</div>
        ${open ? `<ol class="members">${inc.alerts.map((r) => alertRow(r.alert, r.level)).join("")}</ol>` : ""}</li>`;
  }

  // The feed is redrawn for every alert that arrives: rows are kept by id and only
  // the ones that changed are rebuilt, so a feed of hundreds of alerts stays instant.
  const rowEls = new Map();  // item key -> <li>
  function feedItems() {
    const shown = new Map();
    for (const a of alerts.values()) if (visible(a)) shown.set(a.id, a);
    // A wall screen shows a dozen rows: laying out thousands for every arriving alert
    // would hold the page up: the first FEED_ROWS items, and those of the FEED_ROWS newest.
    const list = feed.items(shown, { filters, gridProps: gridNames, openStates,
                                     minAlerts: contract.incident.min_alerts, limit: FEED_ROWS });
    const out = list.map((x) => (x.type === "incident"
      ? { key: `inc:${x.id}`, version: `${x.alerts.map((r) => alertVersion(r.alert, r.level)).join(",")}|${expanded.has(x.id)}|${lang()}`,
          html: () => incidentRow(x) }
      : { key: `al:${x.alert.id}`, version: `${alertVersion(x.alert, x.level)}|${lang()}`,
          html: () => alertRow(x.alert, x.level) }));
    if (!out.length) out.push({ key: "hint", version: lang(), html: () => `<li class="hint">${t("no_alerts")}</li>` });
    return out;
  }

  // Alerts come in bursts (escalations fire together): draw once per animation frame.
  let feedQueued = false;
  function queueFeed() {
    if (feedQueued) return;
    feedQueued = true;
    requestAnimationFrame(() => { feedQueued = false; drawFeed(); });
  }

  function drawFeed() {
    feedQueued = false;
    drawFilters();
    const list = root.querySelector("#alerts");
    const items = feedItems();
    const keep = new Set(items.map((x) => x.key));
    for (const [key, el] of rowEls) {
      if (!keep.has(key)) { el.remove(); rowEls.delete(key); }
    }
    const tpl = document.createElement("template");
    let at = list.firstElementChild;
    for (const item of items) {
      let el = rowEls.get(item.key);
      if (!el || el.dataset.version !== item.version) {
        tpl.innerHTML = item.html().trim();
        const fresh = tpl.content.firstElementChild;
        fresh.dataset.version = item.version;
        if (el) el.replaceWith(fresh);
        if (at === el) at = fresh;
        el = fresh;
        rowEls.set(item.key, el);
      }
      if (el !== at) list.insertBefore(el, at);
      else at = at.nextElementSibling;
    }
  }

  function drawAlert() {
    const box = root.querySelector("#alert-detail");
    const a = alerts.get(selected);
    if (!a) { box.innerHTML = `<p class="hint">${t("select_alert")}</p>`; box.dataset.for = ""; return; }
    if (box.dataset.for !== a.id) {
      // Built once per selected alert: live frames redraw the parts around the note,
      // never the note being typed.
      box.dataset.for = a.id;
      box.innerHTML = `<div class="info"></div>
        <textarea id="note" rows="2"></textarea><div class="actions"></div>`;
    }
    const task = a.task_id && tasks.get(a.task_id);
    const last = task && (task.audit || []).filter((e) => e.note).slice(-1)[0];
    const audit = (a.audit || []).slice(-5).map((e) => `<li>${clock(e.ts)} ${esc(e.actor)} ${esc(has("act_" + e.action) ? t("act_" + e.action) : e.action)} ${esc(e.note)}</li>`).join("");
    box.querySelector(".info").innerHTML = `<h2 class="sev-${a.severity}">${esc(lang() === "en" ? a.title : a.title_zh || a.title)}</h2>
      <p><span class="status" data-status="${esc(a.status)}">${t("st_" + a.status)}</span> · ${t("sev_" + a.severity)} · ${t("grid")} ${esc(a.grid_id || "-")}
        · ${t("raised")} ${clock(a.ts_raised)}</p>
      ${task ? `<p class="task-line" data-status="${esc(task.status)}">${t("task")}: ${esc(task.id)} · ${t("st_" + task.status)} ${esc(task.assignee || "")}</p>` : ""}
      ${last ? `<p class="task-note">${t("task_note")}: ${esc(last.note)}</p>` : ""}
      <ol class="audit">${audit}</ol>`;
    box.querySelector("#note").placeholder = t("note_placeholder");
    box.querySelector(".actions").innerHTML = allowedNow(contract, "alert", a.status, me.user.role)
      .map((x) => `<button data-action="${x}" class="act-${x}">${t("act_" + x)}</button>`).join("");
  }

  function drawGrid() {
    const box = root.querySelector("#grid-detail");
    if (!selectedGrid) { box.innerHTML = `<p class="hint">${t("select_grid")}</p>`; return; }
    const props = gridNames.get(selectedGrid) || {};
    const r = risk.get(selectedGrid);
    const contrib = Object.entries(r?.contributions || {}).sort((x, y) => (y[1].points || 0) - (x[1].points || 0));
    const max = Math.max(1, ...contrib.map(([, c]) => c.points || 0));
    const raw = (v) => (Number.isInteger(v) ? v : Number(v || 0).toFixed(2));
    box.innerHTML = `<h2>${esc(lang() === "en" ? props.name : props.name_zh)} <small>${esc(selectedGrid)}</small>
        <button type="button" class="filter-grid" data-filter-grid="${esc(selectedGrid)}">${t("f_this_grid")}</button></h2>
      <p class="band band-${r?.band || "none"}">${t("score")}: <b>${r ? r.score : "-"}</b> · ${t("band_" + (r?.band || "none"))}</p>
      <h3>${t("contributions")}</h3>
      <ul class="contrib">${contrib.map(([name, c]) => `<li data-indicator="${esc(name)}"><span>${esc(t("i_" + name))} <small>${raw(c.raw)}</small></span>
        <span class="bar"><i style="width:${(100 * (c.points || 0)) / max}%"></i></span>
        <span>${(c.points || 0).toFixed(1)} ${t("points")}</span></li>`).join("")}</ul>
      ${r?.counts ? `<p class="counts">${Object.entries(r.counts).map(([k, v]) => `${esc(has("i_" + k) ? t("i_" + k) : k)}: ${esc(v)}`).join(" · ")}</p>` : ""}`;
  }

  // Grid deltas carry the score and band only: the contributions ("why this colour")
  // of the selected grid are read fresh from the gateway when it changes.
  let gridFetch = null;
  function refreshGrid() {
    const id = selectedGrid;
    if (!id || gridFetch) return;
    gridFetch = fetch(`/api/risk/${encodeURIComponent(id)}`, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : null))
      .then((rec) => {
        if (rec && rec.grid_id === id) { risk.set(id, rec); if (selectedGrid === id) drawGrid(); }
      })
      .catch(() => {})
      .finally(() => { gridFetch = null; if (selectedGrid !== id) refreshGrid(); });
  }
  function selectGrid(id) {
    selectedGrid = id;
    drawGrid();
    refreshGrid();
  }

  function windowLabel(w) {
    if (w === "today") return counters.day ? t("w_today_on", { day: counters.day.slice(5) }) : t("w_today");
    return t("w_" + w);
  }
  function drawCounters() {
    const windows = counters.windows || {};
    root.querySelector("#counters").innerHTML = Object.entries(windows).map(([k, w]) => `<div class="counter" data-counter="${esc(k)}" data-window="${esc(w)}">
      <b>${(counters[k] ?? 0).toLocaleString()}</b><span>${t("c_" + k)}<small class="window">${esc(windowLabel(w))}</small></span></div>`).join("");
  }

  root.querySelector(".filters").addEventListener("click", (ev) => {
    const h = ev.target.dataset.hours;
    if (!h) return;
    hours = Number(h);
    root.querySelectorAll(".filters button").forEach((b) => b.classList.toggle("on", b === ev.target));
    drawFeed();
  });
  root.querySelector("#alerts").addEventListener("click", (ev) => {
    const open = ev.target.closest("[data-expand]");
    if (open) {
      const id = open.dataset.expand;
      if (expanded.has(id)) expanded.delete(id); else expanded.add(id);
      drawFeed();
      return;
    }
    const ack = ev.target.closest("[data-incident-ack]");
    if (ack) {
      // One command for the incident: the worker acknowledges each of its new alerts,
      // each audit trail naming the incident.
      link.command({ target: "incident", id: ack.dataset.incidentAck, action: "ack", note: "" });
      ack.disabled = true;
      return;
    }
    const shelf = ev.target.closest("[data-shelve]");
    if (shelf) { askShelve(shelf.dataset.shelve, { contract, send: (c) => link.command(c) }); return; }
    const unshelf = ev.target.closest("[data-unshelve]");
    if (unshelf) {
      link.command({ target: "alert", id: unshelf.dataset.unshelve, action: "unshelve", note: "" });
      unshelf.disabled = true;
      return;
    }
    const li = ev.target.closest("li[data-id]");
    if (!li) return;
    selected = li.dataset.id;
    drawFeed();
    drawAlert();
  });

  // Filters: kind, status, street, grid (from the grid panel), and a search by grid id or name.
  const pick = (id) => root.querySelector(id);
  function drawFilters() {
    drawTools(root, { alerts, contract, gridNames, filters, gridLabel, held, showHeld });
  }
  function filterBy(name, value) {
    filters[name] = value;
    drawFilters();
    drawFeed();
  }
  for (const name of ["kind", "status", "street"]) {
    pick(`#f-${name}`).addEventListener("change", (ev) => filterBy(name, ev.target.value));
  }
  pick("#f-q").addEventListener("input", (ev) => filterBy("q", ev.target.value));
  pick("#f-grid").addEventListener("click", () => filterBy("grid", ""));
  root.querySelector("#grid-detail").addEventListener("click", (ev) => {
    if (ev.target.dataset.filterGrid) filterBy("grid", ev.target.dataset.filterGrid);
  });

  // Sound: off until the officer turns it on (a gesture), then on until muted.
  const sounds = new Sounds();
  function drawSound() {
    const on = pick("#sound-on");
    on.hidden = sounds.enabled();
    const mute = pick("#mute");
    mute.hidden = !sounds.enabled();
    mute.textContent = t(sounds.muted ? "sound_unmute" : "sound_mute");
    mute.classList.toggle("on", !sounds.muted);
    pick("#wall").dataset.sound = !sounds.enabled() ? "off" : sounds.muted ? "muted" : "on";
  }
  sounds.onchange = drawSound;
  pick("#sound-on").addEventListener("click", () => sounds.enable().then(drawSound));
  pick("#mute").addEventListener("click", () => sounds.setMuted(!sounds.muted));
  root.querySelector("#alert-detail").addEventListener("click", (ev) => {
    const action = ev.target.dataset.action;
    if (!action || !selected) return;
    const box = root.querySelector("#note");
    const note = box.value.trim();
    if (action === "shelve") {  // a time as well as a reason: the dialog asks for both
      askShelve(selected, { contract, note, send: (c) => { link.command(c); box.value = ""; } });
      return;
    }
    if (needsNote(contract, "alert", action) && !note) { toast(t("note_required"), true); box.focus(); return; }
    link.command({ target: "alert", id: selected, action, note });
    box.value = "";
  });

  function upsertAlert(a) {
    const before = alerts.get(a.id);
    if (before && before.ts_updated > a.ts_updated) return;
    alerts.set(a.id, a);
    if (!live) return;  // no sound for the snapshot, only for what arrives live
    if (!before && a.status === "new") sounds.play(a.severity);
    // An escalation raises the same alert (no row of its own): sounded again, repeated.
    else if (before && a.status === "new" && (a.escalation_level || 0) > (before.escalation_level || 0)) {
      sounds.play(a.severity, { escalated: true });
    }
  }

  const wall = mountWall(root, { onGrid: selectGrid });
  const silences = mountSilences(pick("#silences"), { link, contract, grids: () => [...gridNames.keys()] });
  const dutyBoard = mountDutyBoard(pick("#duty-board"), { gridLabel });
  pick("#held").addEventListener("click", () => { showHeld = !showHeld; drawFeed(); });
  // The export: /api/alerts.csv for the days chosen (today unless changed).
  const drawExport = () => {
    const [from, to] = [pick("#x-from"), pick("#x-to")];
    if (to.value < from.value) to.value = from.value;  // at least the one day chosen
    pick("#export").href = exportHref(from.value || today(), to.value || today());
  };
  for (const id of ["#x-from", "#x-to"]) {
    pick(id).value = today();
    pick(id).addEventListener("change", drawExport);
  }
  drawExport();
  setInterval(drawFeed, 30000);  // the 1/6/24 h window slides
  drawCounters();
  drawSound();
  return {
    frame(f) {
      if (f.ch === "alerts") {
        if (f.snapshot) { alerts.clear(); f.items.forEach(upsertAlert); }
        else if (f.m.alert) upsertAlert(f.m.alert);
        if (f.snapshot) drawFeed(); else queueFeed();
        if (selected && (f.snapshot || f.m.alert?.id === selected)) drawAlert();
      } else if (f.ch === "tasks") {
        const items = f.snapshot ? f.items : [f.m.task];
        items.forEach((x) => {
          if (!x) return;
          const before = tasks.get(x.id);
          if (!before || !(before.ts_updated > x.ts_updated)) tasks.set(x.id, x);
        });
        if (selected && items.some((x) => x && x.alert_id === selected)) drawAlert();
      } else if (f.ch === "grids") {
        // Live deltas come batched (f.ms: latest per grid), replayed ones one by one (f.m).
        const deltas = f.snapshot ? [] : (f.ms || [f.m]);
        if (f.snapshot) f.items.forEach((r) => risk.set(r.grid_id, r));
        else deltas.forEach((d) => risk.set(d.grid_id, { ...risk.get(d.grid_id), ...d }));
        scheduleMap();
        if (selectedGrid && (f.snapshot || deltas.some((d) => d.grid_id === selectedGrid))) { drawGrid(); refreshGrid(); }
      } else if (f.ch === "summary") {
        counters = f.m;
        drawCounters();
        wall.summary(f.m);
      } else if (f.op === "welcome") {
        live = false;
        setTimeout(() => { live = true; }, 1500);
      }
    },
    selectGrid,
    sounds,
    get live() { return live; },  // past the snapshot: what arrives now is sounded
    silences,
    dutyBoard,
    result(res) {
      if (res.action === "on_duty" || res.action === "off_duty") dutyBoard.refresh();
      if (res.action === "unshelve" && res.ok === false) {  // refused: may be tried again
        root.querySelectorAll("[data-unshelve]").forEach((b) => { if (b.dataset.unshelve === res.id) b.disabled = false; });
      }
      silences.result(res);
      toast(`${t("act_" + res.action)} · ${resultText(res)}`, res.ok === false);
    },
    relabel() {
      applyLabels(root);
      const box = root.querySelector("#alert-detail");
      box.dataset.for = "";  // rebuild it in the new language (the note is kept)
      const note = box.querySelector("#note")?.value || "";
      drawFeed(); drawAlert(); drawGrid(); drawCounters(); drawMap(); drawSound();
      wall.relabel();
      silences.relabel();
      dutyBoard.relabel();
      if (box.querySelector("#note")) box.querySelector("#note").value = note;
    },
  };
}
