// Entry point: who am I, then the view for my role, the link to the gateway and the banner.
import { applyLabels, has, lang, setLang, t } from "./i18n.js";
import { Link } from "./net.js";

const VIEWS = {
  duty_officer: "./officer.js",
  admin: "./officer.js",
  grid_worker: "./worker.js",
  station_manager: "./station.js",
};

function banner(state) {
  const el = document.getElementById("banner");
  clearTimeout(banner.timer);
  el.className = `banner ${state}`;
  el.dataset.state = state;
  if (state === "up") { el.hidden = true; return; }
  el.hidden = false;
  el.textContent = t({ down: "conn_lost", resumed: "conn_resumed", refused: "conn_refused" }[state]);
  if (state === "resumed") banner.timer = setTimeout(() => { el.hidden = true; }, 4000);
}

export function toast(text, bad = false) {
  const el = document.getElementById("toast");
  el.textContent = text;
  el.className = bad ? "toast bad" : "toast";
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 3000);
}

/** A readable line for a command reply. */
export function resultText(res) {
  if (res.ok === false) {
    // The gateway's refusals are short codes; the worker's are sentences naming who and when.
    return `${t("result_failed")}: ${has("r_" + res.reason) ? t("r_" + res.reason) : res.reason}`;
  }
  return t({ sent: "result_sent", applied: "result_applied", pending: "result_pending" }[res.state] || "result_sent");
}

/**
 * The command contract (GET /api/contract, the server's schemas/commands.py): what
 * `role` may send on a `target` ("alert" or "task") whose status is `status`, in the
 * contract's order, then what it may send in any status.
 */
export function allowedNow(contract, target, status, role) {
  const rules = contract[target];
  return [...Object.keys(rules.next[status] || {}), ...rules.any_state]
    .filter((action) => rules.actions[action].roles.includes(role));
}

/** Whether the contract refuses `action` on a `target` without a note. */
export function needsNote(contract, target, action) {
  return Boolean(contract[target].actions[action]?.needs_note);
}

/** The status `action` leads a `target` to (from any status it may be taken in). */
export function leadsTo(contract, target, action) {
  for (const next of Object.values(contract[target].next)) if (next[action]) return next[action];
  return undefined;
}

/** The installable app's service worker (sw.js): the shell opens without a network. */
function installShell() {
  // Service workers need a secure context (https, or this machine's own address).
  if (!("serviceWorker" in navigator) || !window.isSecureContext) return;
  navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch((err) => {
    console.warn("service worker not registered:", err);
  });
}

async function main() {
  setLang(lang());
  applyLabels();
  installShell();
  const opts = { credentials: "same-origin" };
  let reply, rules;
  try {
    [reply, rules] = await Promise.all([fetch("/api/me", opts), fetch("/api/contract", opts)]);
  } catch (err) {
    // Opened from the installed app's cache with no network: say so, try again shortly.
    banner("down");
    setTimeout(main, 3000);
    return;
  }
  if (reply.status === 401 || rules.status === 401) { location.href = "/signin.html"; return; }
  const me = await reply.json();
  const contract = await rules.json();
  document.body.dataset.role = me.user.role;
  const who = document.getElementById("who");
  const showWho = () => { who.textContent = `${t("role_" + me.user.role)} · ${me.user.name}`; };
  showWho();
  const mod = await import(VIEWS[me.user.role]);
  const root = document.getElementById("view");
  let view = null;
  const link = new Link({
    onFrame: (f) => view.frame(f),
    onStatus: (s) => { banner(s); view.status?.(s); },
    onResult: (r) => view.result?.(r),
  });
  view = mod.mount(root, { me, link, contract });
  document.getElementById("lang").addEventListener("click", () => {
    setLang(lang() === "zh" ? "en" : "zh");
    applyLabels();
    showWho();
    view.relabel();
  });
  link.start();
  window.gridwatch = { link, view };  // for tests and debugging in the console
}

main();
