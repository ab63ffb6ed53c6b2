// The grid worker's own grids on the phone: each grid's band and score, its open alerts,
// and a small map of them. The polygons come from GET /api/grids.geojson, which serves a
// worker their own grids only (each with a `center`, a point inside it); the scores from
// the "grids" channel, the alerts from the "alerts" channel (both scoped by the gateway).
import { clock, lang, t } from "./i18n.js";

const BAND_COLOUR = { red: "#e5484d", yellow: "#f5c518", blue: "#3b82f6" };
const NO_DATA = "#4b5563";
const CLOSED = new Set(["closed", "dismissed"]);  // every other alert status is still open
const SHOWN_ALERTS = 5;

function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function isOpen(alert) {
  return !CLOSED.has(alert.status);
}

/**
 * The "my grids" panel inside `box`.
 * @param {object} ctx me (GET /api/me), alerts (id -> alert record, kept by the caller)
 * @returns {{grids(frame): void, draw(): void, place(gridId): number[]|undefined,
 *   relabel(): void}}
 */
export function myGrids(box, { me, alerts }) {
  box.innerHTML = `<h2 data-i18n="my_grids"></h2>
    <div id="grid-map" class="grid-map"></div>
    <ul id="grid-list" class="grid-list"></ul>
    <h3 data-i18n="open_alerts"></h3>
    <ol id="grid-alerts" class="grid-alerts"></ol>`;
  const risk = new Map();    // grid id -> {score, band, ...}
  const grids = new Map();   // grid id -> feature properties (name, name_zh, center)
  const mapBox = box.querySelector("#grid-map");
  let chart = null;
  let loaded = false;

  fetch("/api/grids.geojson", { credentials: "same-origin" })
    .then((r) => (r.ok ? r.json() : { features: [] }))
    .then((geo) => {
      geo.features.forEach((f) => grids.set(f.properties.id, f.properties));
      loaded = true;
      if (geo.features.length && window.echarts) {
        echarts.registerMap("my-grids", geo);
        chart = echarts.init(mapBox, null, { renderer: "canvas" });
        new ResizeObserver(() => chart.resize()).observe(mapBox);
      }
      mapBox.hidden = !chart;
      draw();
    })
    .catch(() => { loaded = true; draw(); });

  function name(id) {
    const p = grids.get(id);
    if (!p) return id;
    return lang() === "en" ? p.name : p.name_zh || p.name;
  }

  function ids() {
    // The user's grids, in the order the district file lists them.
    const known = [...grids.keys()];
    return [...known, ...me.user.grids.filter((g) => !grids.has(g))];
  }

  function drawMap() {
    if (!chart) return;
    chart.setOption({
      series: [{ type: "map", map: "my-grids", nameProperty: "id", roam: false,
                 data: [...grids.keys()].map((id) => {
                   const r = risk.get(id);
                   return { name: id, value: r ? r.score : null,
                            itemStyle: { areaColor: BAND_COLOUR[r?.band] || NO_DATA } };
                 }),
                 itemStyle: { borderColor: "#e5e7eb", borderWidth: 1 },
                 label: { show: true, color: "#fff", fontSize: 12, formatter: (p) => p.name },
                 emphasis: { disabled: true }, select: { disabled: true } }],
    });
  }

  function draw() {
    const open = [...alerts.values()].filter((a) => isOpen(a) && a.grid_id);
    const list = box.querySelector("#grid-list");
    const mine = loaded ? ids() : me.user.grids;
    list.innerHTML = mine.map((id) => {
      const r = risk.get(id);
      const n = open.filter((a) => a.grid_id === id).length;
      return `<li class="my-grid band-${r ? esc(r.band) : "none"}" data-grid="${esc(id)}">
        <span class="name"><b>${esc(name(id))}</b> <small>${esc(id)}</small></span>
        <span class="band">${r ? `${t("band_" + r.band)} · <b>${esc(r.score)}</b>` : t("band_none")}</span>
        <span class="open-count" data-open="${n}">${t("open_alerts_n", { n })}</span></li>`;
    }).join("") || `<li class="hint">${t("no_grids")}</li>`;
    const rows = open.sort((a, b) => b.ts_raised - a.ts_raised).slice(0, SHOWN_ALERTS);
    box.querySelector("#grid-alerts").innerHTML = rows.map((a) => `
      <li class="sev-${esc(a.severity)}" data-id="${esc(a.id)}">
        <span class="sev">${t("sev_" + a.severity)}</span>
        <span class="title">${esc(lang() === "en" ? a.title : a.title_zh || a.title)}</span>
        <span class="meta">${esc(name(a.grid_id))} · ${clock(a.ts_raised)} · ${t("st_" + a.status)}</span></li>`)
      .join("") || `<li class="hint">${t("no_open_alerts")}</li>`;
    drawMap();
  }

  return {
    grids(f) {
      // Live deltas come batched (f.ms: latest per grid), replayed ones one by one (f.m).
      if (f.snapshot) f.items.forEach((r) => risk.set(r.grid_id, r));
      else (f.ms || [f.m]).forEach((d) => d && risk.set(d.grid_id, { ...risk.get(d.grid_id), ...d }));
    },
    draw,
    /** [lon, lat] of a point inside one of the user's grids, or undefined. */
    place(gridId) {
      const c = grids.get(gridId)?.center;
      return Array.isArray(c) ? c : undefined;
    },
    name,
  };
}
