// The station manager's view: the next 24 hours of arrivals with 80 % / 95 % bands,
// seats booked, actual arrivals as they come, and the peak hours with a staffing hint.
import { applyLabels, lang, t } from "./i18n.js";

function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// Hours are shown on the station's clock (the offset its forecast carries), whatever
// the time zone of the screen that shows them; ``ahead`` hours later for a range's end.
function hourLabel(iso, ahead = 0) {
  const m = /T(\d\d):/.exec(iso);
  const hour = m ? Number(m[1]) : new Date(iso).getHours();
  return `${String((hour + ahead) % 24).padStart(2, "0")}:00`;
}

export function mount(root, { me }) {
  root.innerHTML = `<section class="station">
    <div class="panel"><div class="panel-head"><h2 data-i18n="forecast_title"></h2>
      <select id="pick"></select></div><div id="chart" class="chart"></div>
      <ul id="holidays" class="holidays" hidden></ul>
      <p id="model" class="model-line" hidden></p></div>
    <div class="panel peaks"><h2 data-i18n="peaks"></h2><table id="peaks"></table></div>
  </section>`;
  applyLabels(root);
  const forecasts = new Map();
  const names = new Map(me.stations.map((s) => [s.id, s]));
  const mineIds = me.user.role === "station_manager" ? me.user.stations : [...names.keys()];
  let current = mineIds[0];
  const pick = root.querySelector("#pick");
  const chart = echarts.init(root.querySelector("#chart"));
  // The panel's size settles after layout (and changes with the window): follow it.
  new ResizeObserver(() => chart.resize()).observe(root.querySelector("#chart"));

  function drawPick() {
    pick.innerHTML = mineIds.map((id) => {
      const s = names.get(id) || { name: id, name_zh: id };
      return `<option value="${esc(id)}"${id === current ? " selected" : ""}>${esc(lang() === "en" ? s.name : s.name_zh)}</option>`;
    }).join("");
    pick.hidden = mineIds.length < 2;
  }
  pick.addEventListener("change", () => { current = pick.value; draw(); });

  // Days of the next 24 hours that past years call odd (a holiday), and how odd.
  function holidayName(h) {
    if (!h.holiday) return t("this_date");
    const label = t(`hol_${h.holiday}`);
    const name = label.startsWith("hol_") ? h.holiday : label;
    if (!h.offset) return name;
    return `${name} ${t(h.offset < 0 ? "days_before" : "days_after", { n: Math.abs(h.offset) })}`;
  }

  // ... and the weekend days worked in place of a weekday off (调休).
  function drawHolidays(f) {
    const list = root.querySelector("#holidays");
    const days = f?.holidays || [];
    const worked = f?.workdays || [];
    list.innerHTML = days.map((h) => `<li>${esc(t("holiday_line", {
      day: h.day.slice(5), what: holidayName(h), x: Number(h.factor).toFixed(2) }))}</li>`).join("")
      + worked.map((d) => `<li>${esc(t("workday_line", { day: String(d).slice(5) }))}</li>`).join("");
    list.hidden = !days.length && !worked.length;
  }

  // Which model made the forecast and why: its validation error beside the others'.
  function modelName(k) {
    const label = t(`model_${k}`);
    return label.startsWith("model_") ? k : label;
  }

  function drawModel(f) {
    const line = root.querySelector("#model");
    const m = f?.model;
    if (!m || !m.weights) { line.hidden = true; return; }
    const ks = Object.keys(m.weights).sort((a, b) => m.weights[b] - m.weights[a]);
    const chosen = ks.length === 1 ? modelName(ks[0])
      : ks.map((k) => `${modelName(k)} ${Math.round(100 * m.weights[k])}%`).join(" + ");
    const mae = m.validation_mae || {};
    const others = Object.keys(mae).filter((k) => k !== "chosen")
      .map((k) => `${modelName(k)} ${Number(mae[k]).toFixed(1)}`).join(lang() === "en" ? ", " : "，");
    line.textContent = t("model_line", { chosen, n: m.origins, mae: Number(mae.chosen).toFixed(1), others });
    line.hidden = false;
  }

  function draw() {
    const f = forecasts.get(current);
    const table = root.querySelector("#peaks");
    drawHolidays(f);
    drawModel(f);
    if (!f) {
      chart.clear();
      chart.setOption({ title: { text: t("no_forecast"), left: "center", top: "middle", textStyle: { color: "#9ca3af" } } });
      table.innerHTML = "";
      return;
    }
    const x = f.hours.map((h) => hourLabel(h));
    const diff = (hi, lo) => hi.map((v, i) => Math.max(0, v - lo[i]));
    // Bands are stacked areas: an invisible base at the lower bound plus the width on top.
    const band = (name, lo, hi, colour) => [
      { name, type: "line", data: lo, stack: name, symbol: "none", lineStyle: { opacity: 0 },
        itemStyle: { color: colour }, tooltip: { show: false } },
      { name, type: "line", data: diff(hi, lo), stack: name, symbol: "none", lineStyle: { opacity: 0 },
        areaStyle: { color: colour }, itemStyle: { color: colour } },
    ];
    chart.setOption({
      title: { show: false },
      animation: false,
      tooltip: { trigger: "axis" },
      legend: { top: 0, textStyle: { color: "#e5e7eb" },
                data: [t("forecast"), t("band80"), t("band95"), t("booked"), t("arrived")] },
      grid: { left: 56, right: 24, top: 40, bottom: 36 },
      xAxis: { type: "category", data: x, axisLabel: { color: "#cbd5e1" } },
      yAxis: { type: "value", axisLabel: { color: "#cbd5e1" }, splitLine: { lineStyle: { color: "#1f2f44" } } },
      series: [
        ...band(t("band95"), f.lo95, f.hi95, "rgba(59,130,246,0.18)"),
        ...band(t("band80"), f.lo80, f.hi80, "rgba(59,130,246,0.35)"),
        { name: t("booked"), type: "bar", data: f.booked || [], itemStyle: { color: "#a78bfa" }, barWidth: "40%" },
        { name: t("forecast"), type: "line", data: f.yhat, symbol: "none", lineStyle: { width: 3, color: "#60a5fa" } },
        { name: t("arrived"), type: "line", data: (f.arrived || []).map((v) => (v == null ? null : v)),
          lineStyle: { color: "#f59e0b" }, itemStyle: { color: "#f59e0b" }, connectNulls: false },
      ],
    }, true);
    const total = f.yhat.reduce((s, v) => s + v, 0) || 1;
    const mean = total / f.yhat.length;
    const peaks = f.peaks?.length ? f.peaks
      : f.yhat.map((y, i) => ({ hour: f.hours[i], yhat: y, share: y / total })).sort((a, b) => b.yhat - a.yhat).slice(0, 3);
    table.innerHTML = `<tr><th>${t("hour")}</th><th>${t("forecast")}</th><th>${t("share_of_day")}</th><th>${t("staffing")}</th></tr>`
      + peaks.map((p) => `<tr><td>${hourLabel(p.hour)}–${hourLabel(p.hour, 1)}</td>
        <td>${Math.round(p.yhat)}</td><td>${(100 * p.share).toFixed(1)}%</td>
        <td>${t("staff_hint", { x: (p.yhat / mean).toFixed(1) })}</td></tr>`).join("")
      + `<tr class="sum"><td colspan="2"></td><td>${(100 * peaks.reduce((s, p) => s + p.share, 0)).toFixed(1)}%</td><td></td></tr>`;
  }

  drawPick();
  draw();
  return {
    frame(f) {
      if (f.ch !== "forecasts") return;
      (f.snapshot ? f.items.map((x) => ({ forecast: x })) : [f.m]).forEach(({ forecast }) => {
        if (forecast) forecasts.set(forecast.station_id, forecast);
      });
      if (!current && forecasts.size) current = forecasts.keys().next().value;
      draw();
    },
    relabel() { applyLabels(root); drawPick(); draw(); },
  };
}
