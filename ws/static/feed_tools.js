// The feed's tools as the officer's screen draws them: the filter selects (kind, status,
// street), the grid chip and the held chip (how many alerts are held out of the feed).
import { has, t } from "./i18n.js";

function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function options(el, values, label, value) {
  const html = [`<option value="">${esc(label)}</option>`,
    ...values.map(([v, text]) => `<option value="${esc(v)}">${esc(text)}</option>`)].join("");
  if (el.dataset.html !== html) { el.innerHTML = html; el.dataset.html = html; }
  el.value = value;
}

/**
 * Draw the tools in `root` for the alerts held (`alerts`: id -> alert), the `filters`
 * chosen, the grids known (`gridNames`: id -> properties), and the held states
 * (`held`, shown alone while `showHeld`).
 */
export function drawTools(root, { alerts, contract, gridNames, filters, gridLabel, held, showHeld }) {
  const pick = (id) => root.querySelector(id);
  const kinds = [...new Set([...alerts.values()].map((a) => a.kind))].sort();
  options(pick("#f-kind"), kinds.map((k) => [k, has("k_" + k) ? t("k_" + k) : k]), t("f_all_kinds"), filters.kind);
  const statuses = [...new Set(Object.entries(contract.alert.next)
    .flatMap(([from, to]) => [from, ...Object.values(to)]))];
  options(pick("#f-status"), [["open", t("f_open")], ...statuses.map((x) => [x, t("st_" + x)])],
          t("f_all_statuses"), filters.status);
  const streets = [...new Set([...gridNames.values()].map((p) => p.street).filter(Boolean))].sort();
  options(pick("#f-street"), streets.map((x) => [x, x]), t("f_all_streets"), filters.street);
  const chip = pick("#f-grid");
  chip.hidden = !filters.grid;
  chip.textContent = filters.grid ? `${t("grid")} ${gridLabel(filters.grid)} ×` : "";
  pick("#f-q").placeholder = t("search_grid");
  let n = 0;
  for (const a of alerts.values()) if (held.has(a.status)) n += 1;
  const heldChip = pick("#held");
  heldChip.textContent = t(showHeld ? "held_back" : "held_count", { n });
  heldChip.classList.toggle("on", showHeld);
  heldChip.dataset.count = n;
}
