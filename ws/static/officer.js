// The duty officer's wall screen (1920x1080): alert feed, risk map, grid detail, counters.
import { applyLabels, clock, lang, t } from "./i18n.js";
import { beep } from "./net.js";
import { resultText, toast } from "./app.js";

const BAND_COLOUR = { red: "#e5484d", yellow: "#f5c518", blue: "#3b82f6" };
const NO_DATA = "#4b5563";
const ALERT_ACTIONS = ["ack", "dispatch", "resolve", "close", "dismiss", "handover"];
const COUNTERS = ["open_alerts", "checkpoint_scans", "loiter_reports", "station_tickets", "unassigned", "late", "deadletter"];

const TEMPLATE = `
<section class="officer">
  <div class="counters" id="counters"></div>
  <div class="feed panel">
    <div class="panel-head"><h2 data-i18n="alerts"></h2>
      <span class="filters">
        <button data-hours="1" data-i18n="last_1h"></button>
        <button data-hours="6" data-i18n="last_6h"></button>
        <button data-hours="24" data-i18n="last_24h" class="on"></button>
      </span></div>
    <ol id="alerts" class="alerts"></ol>
  </div>
  <div class="map panel"><div class="panel-head"><h2 data-i18n="map_title"></h2>
    <span class="legend">
      <i style="background:${BAND_COLOUR.red}"></i><span data-i18n="band_red"></span>
      <i style="background:${BAND_COLOUR.yellow}"></i><span data-i18n="band_yellow"></span>
      <i style="background:${BAND_COLOUR.blue}"></i><span data-i18n="band_blue"></span>
      <i style="background:${NO_DATA}"></i><span data-i18n="band_none"></span></span></div>
    <div id="map" class="chart"></div></div>
  <div class="side">
    <div class="panel detail" id="alert-detail"><p class="hint" data-i18n="select_alert"></p></div>
    <div class="panel detail" id="grid-detail"><p class="hint" data-i18n="select_grid"></p></div>
  </div>
</section>`;

function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function mount(root, { link }) {
  root.innerHTML = TEMPLATE;
  applyLabels(root);
  const alerts = new Map();     // id -> alert record
  const incidents = new Map();  // id -> incident record
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
  });
  chart.on("click", (p) => { selectedGrid = p.name; drawGrid(); });
  new ResizeObserver(() => chart.resize()).observe(root.querySelector("#map"));

  let mapTimer = null;
  function drawMap() {
    if (!gridNames.size) return;
    const data = [...gridNames.keys()].map((id) => {
      const r = risk.get(id);
      return { name: id, value: r ? r.score : null,
               itemStyle: { areaColor: r ? BAND_COLOUR[r.band] || NO_DATA : NO_DATA } };
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
    // Grid deltas arrive up to 10 a second; redraw the 1,000-polygon map at most twice.
    if (!mapTimer) mapTimer = setTimeout(() => { mapTimer = null; drawMap(); }, 500);
  }

  function visible(a) {
    return a.ts_raised >= Date.now() / 1000 - hours * 3600 || a.status === "new";
  }

  function drawFeed() {
    const list = root.querySelector("#alerts");
    const rows = [...alerts.values()].filter(visible).sort((a, b) => b.ts_raised - a.ts_raised);
    const inc = [...incidents.values()].filter((i) => i.status === "open");
    list.innerHTML = inc.map((i) => `<li class="incident sev-${i.severity}">
        <b>${t("incident")}</b> ${esc(i.grid_id)} · ${t("incident_of", { n: i.alert_ids.length })}</li>`).join("")
      + (rows.length ? rows.map((a) => `<li data-id="${esc(a.id)}" class="alert sev-${a.severity} st-${a.status}${a.id === selected ? " selected" : ""}">
        <span class="sev">${t("sev_" + a.severity)}</span>
        <span class="title">${esc(lang() === "en" ? a.title : a.title_zh || a.title)}</span>
        <span class="meta">${esc(a.grid_id || a.station_id || "")} · ${clock(a.ts_raised)}</span>
        <span class="status">${t("st_" + a.status)}</span></li>`).join("")
        : `<li class="hint">${t("no_alerts")}</li>`);
  }

  function drawAlert() {
    const box = root.querySelector("#alert-detail");
    const a = alerts.get(selected);
    if (!a) { box.innerHTML = `<p class="hint">${t("select_alert")}</p>`; return; }
    const task = a.task_id && tasks.get(a.task_id);
    const audit = (a.audit || []).slice(-5).map((e) => `<li>${clock(e.ts)} ${esc(e.actor)} ${esc(e.action)} ${esc(e.note)}</li>`).join("");
    box.innerHTML = `<h2 class="sev-${a.severity}">${esc(lang() === "en" ? a.title : a.title_zh || a.title)}</h2>
      <p>${t("st_" + a.status)} · ${t("sev_" + a.severity)} · ${t("grid")} ${esc(a.grid_id || "-")}
        · ${t("raised")} ${clock(a.ts_raised)}</p>
      ${task ? `<p class="task-line">${t("task")}: ${esc(task.id)} · ${t("st_" + task.status)} ${esc(task.assignee || "")}</p>` : ""}
      <ol class="audit">${audit}</ol>
      <textarea id="note" rows="2" placeholder="${t("note_placeholder")}"></textarea>
      <div class="actions">${ALERT_ACTIONS.map((x) => `<button data-action="${x}" class="act-${x}">${t("act_" + x)}</button>`).join("")}</div>`;
  }

  function drawGrid() {
    const box = root.querySelector("#grid-detail");
    if (!selectedGrid) { box.innerHTML = `<p class="hint">${t("select_grid")}</p>`; return; }
    const props = gridNames.get(selectedGrid) || {};
    const r = risk.get(selectedGrid);
    const contrib = Object.entries(r?.contributions || {}).sort((x, y) => (y[1].points || 0) - (x[1].points || 0));
    const max = Math.max(1, ...contrib.map(([, c]) => c.points || 0));
    box.innerHTML = `<h2>${esc(lang() === "en" ? props.name : props.name_zh)} <small>${esc(selectedGrid)}</small></h2>
      <p class="band band-${r?.band || "none"}">${t("score")}: <b>${r ? r.score : "-"}</b> · ${t("band_" + (r?.band || "none"))}</p>
      <h3>${t("contributions")}</h3>
      <ul class="contrib">${contrib.map(([name, c]) => `<li><span>${esc(name)}</span>
        <span class="bar"><i style="width:${(100 * (c.points || 0)) / max}%"></i></span>
        <span>${(c.points || 0).toFixed(1)} ${t("points")}</span></li>`).join("")}</ul>
      ${r?.counts ? `<p class="counts">${Object.entries(r.counts).map(([k, v]) => `${esc(k)}: ${esc(v)}`).join(" · ")}</p>` : ""}`;
  }

  function drawCounters() {
    root.querySelector("#counters").innerHTML = COUNTERS.map((k) => `<div class="counter"><b>${(counters[k] ?? 0).toLocaleString()}</b><span>${t("c_" + k)}</span></div>`).join("");
  }

  root.querySelector(".filters").addEventListener("click", (ev) => {
    const h = ev.target.dataset.hours;
    if (!h) return;
    hours = Number(h);
    root.querySelectorAll(".filters button").forEach((b) => b.classList.toggle("on", b === ev.target));
    drawFeed();
  });
  root.querySelector("#alerts").addEventListener("click", (ev) => {
    const li = ev.target.closest("li[data-id]");
    if (!li) return;
    selected = li.dataset.id;
    drawFeed();
    drawAlert();
  });
  root.querySelector("#alert-detail").addEventListener("click", (ev) => {
    const action = ev.target.dataset.action;
    if (!action || !selected) return;
    const note = root.querySelector("#note").value.trim();
    link.command({ target: "alert", id: selected, action, note });
  });

  function upsertAlert(a) {
    const before = alerts.get(a.id);
    if (before && before.ts_updated > a.ts_updated) return;
    alerts.set(a.id, a);
    if (live && !before && a.status === "new") beep({ high: a.severity === "high" });
  }

  setInterval(drawFeed, 30000);  // the 1/6/24 h window slides
  drawCounters();
  return {
    frame(f) {
      if (f.ch === "alerts") {
        if (f.snapshot) { alerts.clear(); f.items.forEach(upsertAlert); }
        else if (f.m.type === "incident") incidents.set(f.m.incident.id, f.m.incident);
        else if (f.m.alert) upsertAlert(f.m.alert);
        drawFeed();
        if (selected) drawAlert();
      } else if (f.ch === "tasks") {
        (f.snapshot ? f.items : [f.m.task]).forEach((x) => x && tasks.set(x.id, x));
        if (selected) drawAlert();
      } else if (f.ch === "grids") {
        if (f.snapshot) f.items.forEach((r) => risk.set(r.grid_id, r));
        else risk.set(f.m.grid_id, { ...risk.get(f.m.grid_id), ...f.m });
        scheduleMap();
        if (selectedGrid) drawGrid();
      } else if (f.ch === "summary") {
        counters = f.m;
        drawCounters();
      } else if (f.op === "welcome") {
        live = false;
        setTimeout(() => { live = true; }, 1500);
      }
    },
    selectGrid(id) { selectedGrid = id; drawGrid(); },
    result(res) {
      toast(`${t("act_" + res.action)} · ${resultText(res)}`, res.ok === false);
    },
    relabel() {
      applyLabels(root);
      drawFeed(); drawAlert(); drawGrid(); drawCounters(); drawMap();
    },
  };
}
