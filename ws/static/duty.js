// The grid worker's on-duty / off-duty switch at the top of the phone, and the banner
// saying so while off duty. The state is the server's (GET /api/duty: the worker's own
// record; never marked is on duty), read on load, after each reconnect and after each
// duty command's outcome. A tap sends {target: "duty", id: <me>, action: "on_duty" |
// "off_duty"} through the link like the task commands (queued while offline); the switch
// shows the state asked for until the outcome comes, then the server's again.
import { clock, t } from "./i18n.js";

export const DUTY_ACTIONS = new Set(["on_duty", "off_duty"]);
const RETRY_MS = 2000;  // after a "pending" outcome, read the state again this often
const RETRIES = 5;

function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * The switch inside `box` and the off-duty banner `banner`; `onChange()` is called when
 * the state shown changes (the task list redraws: an offered task cannot be accepted
 * while off duty).
 * @returns {{on(): boolean, refresh(): Promise<void>, result(res: object): void,
 *   note(text: string, bad: boolean): void, relabel(): void}}
 */
export function dutySwitch(box, banner, { me, link, onChange }) {
  let server = null;  // the worker's duty record as last read, or null (not read yet)
  // The state asked for by a command still on its way (a queued one survives a reload).
  const queued = link.pending().filter((c) => c.target === "duty" && c.id === me.user.name);
  let wanted = queued.length ? queued[queued.length - 1].action === "on_duty" : null;
  let last = null;  // {text, bad}: the last command's outcome, shown under the switch
  let shown = null;

  function on() {
    if (wanted !== null) return wanted;
    return server ? server.on !== false : true;  // never marked, or not read yet: on duty
  }

  function draw() {
    const isOn = on();
    const waiting = wanted !== null;
    const offline = waiting && link.pending().some((c) => c.target === "duty") && !link.online();
    const since = server && server.ts && wanted === null
      ? t("duty_since", { t: clock(server.ts), who: server.actor || "" }) : "";
    box.dataset.duty = isOn ? "on" : "off";
    box.dataset.known = server ? "1" : "0";
    box.dataset.waiting = waiting ? "1" : "0";
    box.className = `duty ${isOn ? "is-on" : "is-off"}`;
    box.innerHTML = `<button id="duty-switch" type="button" role="switch" class="switch"
        aria-checked="${isOn}" aria-label="${t("duty_switch")}"><span class="knob"></span></button>
      <div class="duty-text"><b class="duty-state">${t(isOn ? "duty_on" : "duty_off")}</b>
        <span class="duty-hint">${esc(offline ? t("queued_offline") : waiting ? t("result_sent") : since)}</span>
        ${last ? `<span class="duty-result${last.bad ? " bad" : ""}">${esc(last.text)}</span>` : ""}</div>`;
    banner.hidden = isOn;
    banner.textContent = t("off_duty_banner");
    if (shown !== null && shown !== isOn) onChange?.();
    shown = isOn;
  }

  async function refresh() {
    try {
      const reply = await fetch("/api/duty", { credentials: "same-origin", cache: "no-store" });
      if (!reply.ok) return;
      const body = await reply.json();
      server = (body.duty || []).find((d) => d.worker === me.user.name) || { worker: me.user.name, on: true, ts: null };
      if (wanted === server.on) wanted = null;  // the command asked for is applied
    } catch (err) {
      // Offline: the state shown stays; the next reconnect reads it again.
    } finally {
      draw();
    }
  }

  box.addEventListener("click", (ev) => {
    if (!ev.target.closest("#duty-switch")) return;
    wanted = !on();
    last = null;
    link.command({ target: "duty", id: me.user.name, action: wanted ? "on_duty" : "off_duty" });
    draw();
  });

  draw();
  return {
    on,
    refresh,
    result(res) {
      if (res.ok === false || res.state === "applied") {
        wanted = null;  // decided: the server's state is the one to show
        refresh();
      } else if (res.state === "pending") {
        // Not yet applied by the worker: read again a few times until it is.
        let tries = 0;
        const again = async () => {
          await refresh();
          if (wanted !== null && (tries += 1) < RETRIES) setTimeout(again, RETRY_MS);
        };
        setTimeout(again, RETRY_MS);
      } else draw();
    },
    note(text, bad) { last = { text, bad }; draw(); },
    relabel: draw,
  };
}
