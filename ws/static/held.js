// Holding alerts out of the live feed (the contract's held states): the shelve dialog
// (one new alert, with a reason, for at most `contract.alert.shelve_max_s`) and the
// durations offered by it and by the silences panel (silences.js).
import { t } from "./i18n.js";

const STEPS_S = [900, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 12 * 3600, 24 * 3600];

/** "30 分钟" / "2 h": a duration of whole minutes or hours. */
export function durationLabel(seconds) {
  return seconds < 3600 ? t("dur_min", { n: seconds / 60 }) : t("dur_h", { n: seconds / 3600 });
}

/** `<option>`s of the durations up to `maxS` (the longest last), `pick` selected. */
export function durationOptions(maxS, pick) {
  const steps = STEPS_S.filter((s) => s <= maxS);
  if (!steps.includes(maxS)) steps.push(maxS);
  return steps.map((s) => `<option value="${s}"${s === pick ? " selected" : ""}>${durationLabel(s)}</option>`).join("");
}

/** Whether the alert's status holds it out of the live feed (silenced, shelved). */
export function heldStates(contract) {
  return new Set(contract.alert.held || []);
}

/**
 * Ask for a reason and a time, then shelve `alertId`: `send(cmd)` gets the command
 * (`{target: "alert", id, action: "shelve", note, params: {for_s}}`), as the worker
 * reads it (agents/commands.py `shelf_time`). A dialog over the page; cancel sends nothing.
 */
export function askShelve(alertId, { contract, note = "", send }) {
  const max = contract.alert.shelve_max_s;
  const dialog = document.createElement("dialog");
  dialog.id = "shelve-dialog";
  dialog.className = "held-dialog";
  dialog.innerHTML = `<form method="dialog">
      <h2>${t("act_shelve")} <small>${alertId.replace(/[&<>"']/g, "")}</small></h2>
      <label>${t("shelve_reason")}<input name="reason" autocomplete="off" maxlength="500"></label>
      <label>${t("shelve_for", { max: max / 3600 })}<select name="for">${durationOptions(max, 3600)}</select></label>
      <p class="actions"><button type="submit" value="ok" class="primary">${t("act_shelve")}</button>
        <button type="button" value="cancel" class="cancel">${t("cancel")}</button></p></form>`;
  document.body.append(dialog);
  const form = dialog.querySelector("form");
  form.reason.value = note;
  const close = () => { dialog.close(); dialog.remove(); };
  dialog.querySelector(".cancel").addEventListener("click", close);
  dialog.addEventListener("cancel", () => dialog.remove());
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const reason = form.reason.value.trim();
    if (!reason) { form.reason.setCustomValidity(t("note_required")); form.reportValidity(); return; }
    const forS = Number(form.for.value);
    if (!(forS > 0 && forS <= max)) return;
    send({ target: "alert", id: alertId, action: "shelve", note: reason, params: { for_s: forS } });
    close();
  });
  form.reason.addEventListener("input", () => form.reason.setCustomValidity(""));
  dialog.showModal();
  form.reason.focus();
  return dialog;
}

/** The export link: `/api/alerts.csv` for the days `from` to `to` (both included). */
export function exportHref(from, to) {
  const next = new Date(`${to}T00:00:00Z`);
  next.setUTCDate(next.getUTCDate() + 1);
  const end = next.toISOString().slice(0, 10);
  return `/api/alerts.csv?from=${encodeURIComponent(from)}&to=${encodeURIComponent(end)}`;
}

/** Today on this screen's clock, as YYYY-MM-DD. */
export function today() {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}
