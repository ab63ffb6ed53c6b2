// The officers' duty board: who of the grid workers is on duty, grid by grid, and the
// grids where no one is (a dispatch there makes no task: the alert comes back to the
// officers). A chip on the wall counts the uncovered grids; it opens a dialog with the
// counts, the uncovered grids first, and every grid's workers on and off duty, filtered
// by grid or worker. Read from GET /api/duty (the board is officers' and admins' only:
// ws/duty_board.py), every REFRESH_MS and each time the dialog opens.
import { clock, t } from "./i18n.js";

const REFRESH_MS = 10000;
const ROWS = 120;  // grid rows drawn at once; the filter reaches the others

function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * Mount the chip in `chip` (a button); the dialog is made when it opens.
 * @param {object} opts gridLabel(id): the grid's id and name as the screen shows it
 * @returns {{refresh(): Promise<void>, relabel(): void, get board(): object|null}}
 */
export function mountDutyBoard(chip, { gridLabel = (id) => id } = {}) {
  let board = null;  // the last reply, or null (not read yet, or refused)
  let dialog = null;
  let query = "";

  function workerText(name) {
    const p = board && board.byName.get(name);
    const since = p && p.ts ? ` · ${t("duty_since", { t: clock(p.ts), who: p.actor || "" })}` : "";
    return `<span class="who" data-worker="${esc(name)}" title="${esc(name + since)}">${esc(name)}</span>`;
  }

  function drawChip() {
    const n = board ? board.counts.uncovered : null;
    chip.hidden = board === null;
    chip.dataset.uncovered = n ?? "";
    chip.classList.toggle("alarm", Boolean(n));
    chip.textContent = n ? t("duty_board_chip_n", { n }) : t("duty_board_chip");
  }

  function matches(row) {
    const q = query.trim().toLowerCase();
    if (!q) return true;
    return [row.grid_id, gridLabel(row.grid_id), ...row.on, ...row.off]
      .some((x) => String(x).toLowerCase().includes(q));
  }

  function drawDialog() {
    if (!dialog || !board) return;
    const c = board.counts;
    dialog.querySelector("h2 .title").textContent = t("duty_board_title");
    dialog.querySelector(".duty-sum").innerHTML = [
      `<span data-count="on">${esc(t("duty_board_on", { n: c.on }))}</span>`,
      `<span data-count="off">${esc(t("duty_board_off", { n: c.off }))}</span>`,
      `<span data-count="uncovered" class="${c.uncovered ? "bad" : ""}">${esc(t("duty_board_uncovered_n", { n: c.uncovered }))}</span>`,
    ].join(" · ");
    dialog.querySelector(".duty-uncovered-head").textContent = t("duty_board_uncovered");
    const offOf = new Map(board.grids.map((g) => [g.grid_id, g.off]));
    dialog.querySelector(".duty-uncovered").innerHTML = board.uncovered.length
      ? board.uncovered.map((id) => `<li data-grid="${esc(id)}"><b>${esc(gridLabel(id))}</b>
          <span class="off">${(offOf.get(id) || []).length
            ? `${esc(t("duty_off"))}: ${(offOf.get(id) || []).map(workerText).join(", ")}`
            : esc(t("duty_board_no_worker"))}</span></li>`).join("")
      : `<li class="hint">${esc(t("duty_board_all_covered"))}</li>`;
    const shown = board.grids.filter(matches);
    const head = `<tr><th>${esc(t("grid"))}</th><th>${esc(t("duty_on"))}</th><th>${esc(t("duty_off"))}</th></tr>`;
    dialog.querySelector(".duty-grids").innerHTML = head + shown.slice(0, ROWS).map((g) => `
      <tr data-grid="${esc(g.grid_id)}" class="${g.on.length ? "" : "uncovered"}">
        <td>${esc(gridLabel(g.grid_id))}</td>
        <td class="on">${g.on.length ? g.on.map(workerText).join(", ") : `<b class="none">${esc(t("no_one_on_duty"))}</b>`}</td>
        <td class="off">${g.off.map(workerText).join(", ")}</td></tr>`).join("");
    dialog.querySelector(".duty-more").textContent = shown.length > ROWS
      ? t("duty_board_more", { n: shown.length - ROWS }) : "";
    dialog.querySelector('input[name="q"]').placeholder = t("duty_board_filter");
    dialog.querySelector(".cancel").textContent = t("close");
  }

  function open() {
    if (dialog) return dialog;
    dialog = document.createElement("dialog");
    dialog.id = "duty-dialog";
    dialog.className = "held-dialog duty-dialog";
    dialog.innerHTML = `<h2><span class="title"></span></h2>
      <p class="duty-sum"></p>
      <h3 class="duty-uncovered-head"></h3><ol class="duty-uncovered"></ol>
      <input name="q" type="search" autocomplete="off">
      <div class="duty-scroll"><table class="duty-grids"></table><p class="duty-more hint"></p></div>
      <p class="actions"><button type="button" class="cancel"></button></p>`;
    document.body.append(dialog);
    const close = () => { dialog.close(); dialog.remove(); dialog = null; };
    dialog.querySelector(".cancel").addEventListener("click", close);
    dialog.addEventListener("cancel", (ev) => { ev.preventDefault(); close(); });
    const input = dialog.querySelector('input[name="q"]');
    input.value = query;
    input.addEventListener("input", () => { query = input.value; drawDialog(); });
    dialog.showModal();
    drawDialog();
    refresh();
    return dialog;
  }

  let inFlight = null;
  function refresh() {
    if (inFlight) return inFlight;
    inFlight = fetch("/api/duty", { credentials: "same-origin", cache: "no-store" })
      .then((r) => (r.ok ? r.json() : null))
      .then((body) => {
        if (body && body.grids) {
          board = { ...body, byName: new Map(body.workers.map((p) => [p.worker, p])) };
          drawChip();
          drawDialog();
        }
      })
      .catch(() => {})  // offline: the last board stays; the next read tries again
      .finally(() => { inFlight = null; });
    return inFlight;
  }

  chip.addEventListener("click", open);
  drawChip();
  refresh();
  setInterval(refresh, REFRESH_MS);
  return {
    refresh,
    open,
    relabel() { drawChip(); drawDialog(); },
    get board() { return board; },
  };
}
