// The station manager's view: the last hours of actual arrivals (up to now, none drawn
// for hours still to come) and the next 24 hours' forecast with 80 % / 95 % bands, seats
// booked, last week's same hours as a faint line, the peak hours with a staffing hint,
// a station selector and the forecast as a CSV download. The record arrives on the
// forecasts channel; what the page draws is the gateway's view of it
// (GET /api/forecast/{station}, gridwatch/station_view.py), which adds the arrivals
// so far and last week's hours.
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

// "MM-DD HH:00" on the station's clock: the axis category of one hour.
function axisValue(iso) {
  const m = /^\d{4}-(\d\d)-(\d\d)T/.exec(iso);
  return `${m ? `${m[1]}-${m[2]}` : ""} ${hourLabel(iso)}`;
}

// The date under the first hour and under every midnight; the hour alone elsewhere.
export function axisLabel(value, index) {
  const [day, hour] = String(value).split(" ");
  return index === 0 || hour === "00:00" ? `${hour}\n${day}` : hour;
}

// Without the gateway's view (an older gateway, a failed read), the record alone: its
// arrivals up to the hour it was made in, nothing after.
function viewOf(f) {
  const made = f.made_at_event_time != null ? f.made_at_event_time * 1000 : Date.parse(f.hours[0]);
  const upTo = f.hours.filter((h) => Date.parse(h) <= made).length - 1;
  return { ...f, forecast_from: 0, now_index: upTo,
           arrived: (f.arrived || []).map((v, i) => (i <= upTo ? v : null)) };
}

export function mount(root, { me }) {
  root.innerHTML = `<section class="station">
    <div class="panel"><div class="panel-head"><h2 data-i18n="forecast_title"></h2>
      <span class="tools"><select id="pick"></select>
        <a id="csv" download hidden data-i18n="download_csv"></a></span></div>
      <div id="chart" class="chart"></div>
      <ul id="holidays" class="holidays" hidden></ul>
      <p id="model" class="model-line" hidden></p></div>
    <div class="panel peaks"><h2 data-i18n="peaks"></h2><table id="peaks"></table></div>
  </section>`;
  applyLabels(root);
  const forecasts = new Map();  // station -> the record from the channel
  const views = new Map();      // station -> the gateway's view of it
  const names = new Map(me.stations.map((s) => [s.id, s]));
  const mineIds = me.user.role === "station_manager" ? me.user.stations : [...names.keys()];
  let current = mineIds[0];
  const pick = root.querySelector("#pick");
  const csv = root.querySelector("#csv");
  const chart = echarts.init(root.querySelector("#chart"));
  // The panel's size settles after layout (and changes with the window): follow it.
  new ResizeObserver(() => chart.resize()).observe(root.querySelector("#chart"));

  function drawPick() {
    const ids = [...new Set([...mineIds, ...forecasts.keys()])];
    pick.innerHTML = ids.map((id) => {
      const s = names.get(id) || { name: id, name_zh: id };
      return `<option value="${esc(id)}"${id === current ? " selected" : ""}>${esc(lang() === "en" ? s.name : s.name_zh)}</option>`;
    }).join("");
    pick.hidden = ids.length < 2;
  }
  pick.addEventListener("change", () => { current = pick.value; draw(); load(current); });

  // The gateway's view of the current station's record: read when a record arrives,
  // when the station changes, and every half minute (the arrivals move on).
  const loading = new Set();
  function load(id) {
    if (!id || loading.has(id) || !forecasts.has(id)) return;
    loading.add(id);
    fetch(`/api/forecast/${encodeURIComponent(id)}`, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : null))
      .then((v) => { if (v && v.station_id === id) { views.set(id, v); if (id === current) draw(); } })
      .catch(() => {})
      .finally(() => loading.delete(id));
  }
  setInterval(() => load(current), 30000);

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
    // Records made before the origins were 12 hours apart hold no "days": one a day.
    const days = m.days || m.origins;
    const step = Math.max(1, Math.round((24 * days) / Math.max(m.origins, 1)));
    line.textContent = t("model_line", { chosen, n: m.origins, days, step, mae: Number(mae.chosen).toFixed(1), others });
    line.hidden = false;
  }

  function draw() {
    const record = forecasts.get(current);
    const table = root.querySelector("#peaks");
    drawHolidays(record);
    drawModel(record);
    csv.hidden = !record;
    csv.href = `/api/forecast/${encodeURIComponent(current || "")}.csv`;
    if (!record) {
      chart.clear();
      chart.setOption({ title: { text: t("no_forecast"), left: "center", top: "middle", textStyle: { color: "#9ca3af" } } });
      table.innerHTML = "";
      return;
    }
    // The view, if it was made from this record; else the record alone.
    const v = views.get(current);
    const f = v && v.origin === record.origin && v.made_at_event_time === record.made_at_event_time ? v : viewOf(record);
    const x = f.hours.map(axisValue);
    const diff = (hi, lo) => hi.map((h, i) => (h == null || lo[i] == null ? null : Math.max(0, h - lo[i])));
    // Bands are stacked areas: an invisible base at the lower bound plus the width on top.
    const band = (name, lo, hi, colour) => [
      { name, type: "line", data: lo, stack: name, symbol: "none", lineStyle: { opacity: 0 },
        itemStyle: { color: colour }, tooltip: { show: false } },
      { name, type: "line", data: diff(hi, lo), stack: name, symbol: "none", lineStyle: { opacity: 0 },
        areaStyle: { color: colour }, itemStyle: { color: colour } },
    ];
    const hasWeek = (f.last_week || []).some((w) => w != null);
    const nowAt = f.now_index >= 0 ? x[f.now_index] : null;
    chart.setOption({
      title: { show: false },
      animation: false,
      tooltip: { trigger: "axis" },
      legend: { top: 0, textStyle: { color: "#e5e7eb" },
                data: [t("forecast"), t("band80"), t("band95"), t("booked"), t("arrived"),
                       ...(hasWeek ? [t("last_week")] : [])] },
      grid: { left: 56, right: 24, top: 40, bottom: 48 },
      xAxis: { type: "category", data: x, axisLabel: { color: "#cbd5e1", formatter: axisLabel } },
      yAxis: { type: "value", axisLabel: { color: "#cbd5e1" }, splitLine: { lineStyle: { color: "#1f2f44" } } },
      series: [
        ...band(t("band95"), f.lo95, f.hi95, "rgba(59,130,246,0.18)"),
        ...band(t("band80"), f.lo80, f.hi80, "rgba(59,130,246,0.35)"),
        { name: t("booked"), type: "bar", data: f.booked || [], itemStyle: { color: "#a78bfa" }, barWidth: "40%" },
        { name: t("forecast"), type: "line", data: f.yhat, symbol: "none", lineStyle: { width: 3, color: "#60a5fa" } },
        ...(hasWeek ? [{ name: t("last_week"), type: "line", data: f.last_week, symbol: "none",
                         lineStyle: { color: "#9ca3af", width: 1, type: "dashed", opacity: 0.55 },
                         itemStyle: { color: "#9ca3af" }, z: 1 }] : []),
        // Actual arrivals up to now only: the hours to come have none yet (null, not 0).
        { name: t("arrived"), type: "line", data: f.arrived || [], connectNulls: false,
          lineStyle: { color: "#f59e0b", width: 2 }, itemStyle: { color: "#f59e0b" },
          markLine: nowAt == null ? undefined : {
            symbol: "none", silent: true, label: { formatter: t("now"), color: "#f59e0b" },
            lineStyle: { color: "#f59e0b", type: "dotted" }, data: [{ xAxis: nowAt }] } },
      ],
    }, true);
    const yhat = record.yhat;
    const total = yhat.reduce((s, y) => s + y, 0) || 1;
    const mean = total / yhat.length;
    const peaks = record.peaks?.length ? record.peaks
      : yhat.map((y, i) => ({ hour: record.hours[i], yhat: y, share: y / total })).sort((a, b) => b.yhat - a.yhat).slice(0, 3);
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
      const came = (f.snapshot ? f.items.map((x) => ({ forecast: x })) : [f.m]).map(({ forecast }) => forecast).filter(Boolean);
      came.forEach((x) => forecasts.set(x.station_id, x));
      if (!current && forecasts.size) current = forecasts.keys().next().value;
      drawPick();
      draw();
      if (came.some((x) => x.station_id === current)) load(current);
    },
    relabel() { applyLabels(root); drawPick(); draw(); },
  };
}
