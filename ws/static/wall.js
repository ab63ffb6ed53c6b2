// The wall's furniture around the feed: a clock, the feed's health, trend charts of the
// last 24 hours (GET /api/trends) and the ten riskiest grids with their main reason
// (GET /api/top). Both routes are for those who see the whole district.
import { lang, t } from "./i18n.js";

const LATE_S = 60;      // the newest event older than this: the feed is late
const STALLED_S = 300;  // ... and than this: stalled
const TRENDS_EVERY_MS = 60000;
const TOP_EVERY_MS = 10000;
const COLOURS = { red: "#e5484d", yellow: "#f5c518", green: "#22c55e" };

function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function getJson(path) {
  return fetch(path, { credentials: "same-origin" }).then((r) => (r.ok ? r.json() : null)).catch(() => null);
}

/** How late the feed is: "ok", "late" or "stalled" (and "none" before any event). */
export function healthState(eventTs, nowS) {
  if (eventTs == null) return "none";
  const lag = nowS - eventTs;
  return lag > STALLED_S ? "stalled" : lag > LATE_S ? "late" : "ok";
}

export function mountWall(root, { onGrid }) {
  let eventTs = null;
  let trends = null;
  let top = [];
  const charts = Object.fromEntries(["scans", "kinds", "open"].map((k) => {
    const el = root.querySelector(`#trend-${k}`);
    const chart = echarts.init(el, null, { renderer: "canvas" });
    new ResizeObserver(() => chart.resize()).observe(el);
    return [k, chart];
  }));
  const fmt = {};
  function format(ms, opts) {
    const code = lang() === "en" ? "en-GB" : "zh-CN";
    const key = code + JSON.stringify(opts);
    return (fmt[key] || (fmt[key] = new Intl.DateTimeFormat(code, opts))).format(new Date(ms));
  }

  function drawClock() {
    root.querySelector("#clock").textContent = format(Date.now(), { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
    root.querySelector("#clock-day").textContent = format(Date.now(), { year: "numeric", month: "2-digit", day: "2-digit", weekday: "short" });
    drawHealth();
  }
  function drawHealth() {
    const box = root.querySelector("#health");
    const now = Date.now() / 1000;
    const state = healthState(eventTs, now);
    box.dataset.state = state;
    if (state === "none") { box.textContent = t("health_none"); return; }
    const lag = Math.max(0, Math.round(now - eventTs));
    const lagText = lag < 120 ? t("lag_s", { n: lag }) : t("lag_min", { n: Math.round(lag / 60) });
    box.innerHTML = `<b>${esc(t("health_" + state))}</b><br>${esc(t("last_event"))} ${esc(format(eventTs * 1000, { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false }))}
      · ${esc(t("lag"))} <span class="lag">${esc(lagText)}</span>`;
  }

  function hourLabels() {
    return (trends?.hours || []).map((h) => format(h * 1000, { hour: "2-digit", minute: "2-digit", hour12: false }));
  }
  function line(name, data, colour, stack) {
    return { name, type: stack ? "bar" : "line", stack, data, showSymbol: false,
             itemStyle: colour ? { color: colour } : undefined };
  }
  function drawTrends() {
    const x = hourLabels();
    const base = (title, series) => ({
      title: { text: title, left: 0, top: 0, textStyle: { color: "#e5e7eb", fontSize: 13 } },
      grid: { left: 44, right: 8, top: 44, bottom: 22 }, tooltip: { trigger: "axis" },
      legend: { top: 20, left: 0, textStyle: { color: "#9ca3af", fontSize: 11 }, itemWidth: 10, itemHeight: 8 },
      xAxis: { type: "category", data: x, axisLabel: { color: "#9ca3af", fontSize: 10 } },
      yAxis: { type: "value", minInterval: 1, axisLabel: { color: "#9ca3af", fontSize: 10 },
               splitLine: { lineStyle: { color: "#1f3a57" } } },
      series,
    });
    const scans = Object.entries(trends?.scans || {}).sort();
    charts.scans.setOption(base(`${t("trend_scans")} · ${t("w_last_24h")}`,
      scans.map(([c, d]) => line(t("code_" + c), d, COLOURS[c], "scans"))), true);
    const kinds = Object.entries(trends?.alerts || {}).sort();
    charts.kinds.setOption(base(`${t("trend_alerts")} · ${t("w_last_24h")}`,
      kinds.map(([k, d]) => line(t("k_" + k), d, null, "kinds"))), true);
    charts.open.setOption(base(`${t("trend_open")} · ${t("w_last_24h")}`,
      [line(t("c_open_alerts"), trends?.open || [], "#f97316")]), true);
    root.querySelector("#trends").dataset.hours = String(x.length);
  }

  function drawTop() {
    const list = root.querySelector("#top-grids");
    if (!top.length) { list.innerHTML = `<li class="hint">${t("no_risk")}</li>`; return; }
    list.innerHTML = top.map((g, i) => `<li data-grid="${esc(g.grid_id)}" class="band-${esc(g.band)}">
      <span class="rank">${i + 1}</span>
      <span class="name">${esc(g.grid_id)} ${esc(lang() === "en" ? g.name : g.name_zh)}</span>
      <b>${Number(g.score).toFixed(1)}</b>
      <small class="reason">${esc(g.reason ? g.reason[lang()] : "")}</small></li>`).join("");
  }
  root.querySelector("#top-grids").addEventListener("click", (ev) => {
    const li = ev.target.closest("li[data-grid]");
    if (li) onGrid(li.dataset.grid);
  });

  function loadTrends() {
    getJson("/api/trends").then((body) => { if (body) { trends = body; drawTrends(); } });
  }
  function loadTop() {
    getJson("/api/top").then((body) => { if (body) { top = body.grids; drawTop(); } });
  }
  loadTrends();
  loadTop();
  setInterval(loadTrends, TRENDS_EVERY_MS);
  setInterval(loadTop, TOP_EVERY_MS);
  setInterval(drawClock, 1000);
  drawClock();
  return {
    summary(m) { eventTs = m.event_ts ?? null; drawHealth(); },
    relabel() { drawClock(); drawTrends(); drawTop(); },
    reload() { loadTrends(); loadTop(); },
  };
}
