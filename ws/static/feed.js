// The officer's feed as data: which alerts are rows, which are grouped into an incident,
// in which order, through which filters. Pure (no DOM, no I/O): officer.js draws it.
//
// Order: what needs a human now first. Unacknowledged and escalated alerts lead (highest
// level first), then the other unacknowledged ones, then the open ones (acknowledged,
// dispatched, resolved and waiting to be closed), then the finished; within each, higher
// severity first, then newest first.

export const SEV_RANK = { low: 0, medium: 1, high: 2 };

/**
 * Separate escalation alerts stored before an escalation raised the alert it is about
 * (kind "escalation", `source_ids.alert_id` naming that alert): their level is shown on
 * the alert they are about, and they are no row of their own while it is known.
 * @returns {{levels: Map<string, number>, folded: Set<string>}}
 */
export function foldEscalations(alerts) {
  const levels = new Map();
  const folded = new Set();
  for (const a of alerts.values()) {
    const about = a.kind === "escalation" && a.source_ids && a.source_ids.alert_id;
    if (!about || !alerts.has(about) || a.status !== "new") {
      if (about && alerts.has(about)) folded.add(a.id);  // handled: still no row of its own
      continue;
    }
    folded.add(a.id);
    levels.set(about, Math.max(levels.get(about) || 0, a.escalation_level || 1));
  }
  return { levels, folded };
}

/** The level an alert is escalated to, counting old separate escalation alerts. */
export function levelOf(a, levels) {
  return Math.max(a.escalation_level || 0, levels.get(a.id) || 0);
}

/** 3: unacknowledged and escalated, 2: unacknowledged, 1: open, 0: finished. */
export function need(a, level, openStates) {
  if (a.status === "new") return level > 0 ? 3 : 2;
  return openStates.has(a.status) ? 1 : 0;
}

function key(a, level, openStates) {
  const n = need(a, level, openStates);
  return [n, n === 3 ? level : 0, SEV_RANK[a.severity] ?? 0, a.ts_raised];
}

function before(x, y) {
  // Whether sort key x comes before y (every part larger first).
  for (let i = 0; i < x.length; i += 1) if (x[i] !== y[i]) return x[i] > y[i];
  return false;
}

/** Whether an alert passes the filters (each empty filter passes everything). */
export function passes(a, f, gridProps, openStates) {
  if (f.kind && a.kind !== f.kind) return false;
  if (f.status === "open" ? !openStates.has(a.status) : f.status && a.status !== f.status) return false;
  if (f.grid && a.grid_id !== f.grid) return false;
  const props = (a.grid_id && gridProps.get(a.grid_id)) || {};
  if (f.street && props.street !== f.street) return false;
  if (f.q) {
    const q = f.q.trim().toLowerCase();
    const hay = [a.grid_id, props.name, props.name_zh].filter(Boolean).join("\n").toLowerCase();
    if (q && !hay.includes(q)) return false;
  }
  return true;
}

/**
 * The feed's items, in order: incidents (alerts sharing an `incident_id`, at least
 * `minAlerts` of them among `alerts`) as one item holding their alerts, the other alerts
 * one item each. An incident passes the filters when one of its alerts does, and sorts
 * by its most pressing alert.
 * @returns {Array<{type: "alert", alert, level} | {type: "incident", id, grid_id,
 *   alerts: Array<{alert, level}>, level, severity, open}>}
 */
export function items(alerts, { filters, gridProps, openStates, minAlerts, limit }) {
  const { levels, folded } = foldEscalations(alerts);
  const groups = new Map();
  for (const a of alerts.values()) {
    if (folded.has(a.id)) continue;
    if (a.incident_id) {
      if (!groups.has(a.incident_id)) groups.set(a.incident_id, []);
      groups.get(a.incident_id).push(a);
    }
  }
  const out = [];
  const grouped = new Set();
  for (const [id, members] of groups) {
    if (members.length < minAlerts) continue;
    members.forEach((a) => grouped.add(a.id));
    if (!members.some((a) => passes(a, filters, gridProps, openStates))) continue;
    const rows = members.map((a) => ({ alert: a, level: levelOf(a, levels) }))
      .map((r) => ({ ...r, key: key(r.alert, r.level, openStates) }))
      .sort((x, y) => (before(x.key, y.key) ? -1 : before(y.key, x.key) ? 1 : 0));
    const top = rows[0];
    out.push({
      type: "incident", id, grid_id: top.alert.grid_id, alerts: rows, key: top.key,
      level: Math.max(...rows.map((r) => r.level)),
      severity: rows.reduce((s, r) => (SEV_RANK[r.alert.severity] > SEV_RANK[s] ? r.alert.severity : s), "low"),
      unacknowledged: rows.filter((r) => r.alert.status === "new").length,
    });
  }
  for (const a of alerts.values()) {
    if (folded.has(a.id) || grouped.has(a.id) || !passes(a, filters, gridProps, openStates)) continue;
    const level = levelOf(a, levels);
    out.push({ type: "alert", alert: a, level, key: key(a, level, openStates) });
  }
  out.sort((x, y) => (before(x.key, y.key) ? -1 : before(y.key, x.key) ? 1 : 0));
  if (!limit || out.length <= limit) return out;
  // The first `limit` items, and also those holding one of the `limit` newest alerts: a
  // fresh alert is always on the page, however many escalated ones lead it.
  const newest = (x) => (x.type === "incident" ? Math.max(...x.alerts.map((r) => r.alert.ts_raised)) : x.alert.ts_raised);
  const recent = new Set(out.map((x, i) => [newest(x), i]).sort((a, b) => b[0] - a[0])
    .slice(0, limit).map(([, i]) => i));
  return out.filter((_, i) => i < limit || recent.has(i));
}
