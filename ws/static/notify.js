// Telling a grid worker of a new task while the phone shows something else: a system
// notification (when the worker allowed them) and a vibration. In front, the page's own
// toast and beep do. The control to allow notifications lives in `box`.
import { t } from "./i18n.js";

function supported() {
  return "Notification" in window;
}

/**
 * The "allow notifications" control inside `box`, and `tell`, which notifies when the
 * page is in the background.
 * @returns {{tell(title: string, body: string, tag: string): boolean, relabel(): void}}
 */
export function taskNotifier(box) {
  function draw() {
    const state = supported() ? Notification.permission : "unsupported";
    box.dataset.permission = state;
    if (state === "default") {
      box.innerHTML = `<button id="notify-allow" type="button" class="primary">${t("notify_allow")}</button>
        <span class="hint">${t("notify_why")}</span>`;
      box.querySelector("#notify-allow").addEventListener("click", async () => {
        // Asked only on the worker's tap: browsers refuse (or bury) a prompt without one.
        try { await Notification.requestPermission(); } catch (err) { /* an old callback-only API */ }
        draw();
      });
    } else {
      box.innerHTML = `<span class="hint">${t("notify_" + state)}</span>`;
    }
  }
  draw();

  return {
    tell(title, body, tag) {
      navigator.vibrate?.([200, 100, 200, 100, 400]);
      if (document.visibilityState !== "hidden") return false;
      if (!supported() || Notification.permission !== "granted") return false;
      const options = { body, tag, renotify: true, icon: "/icon-192.png" };
      try {
        const n = new Notification(title, options);
        n.onclick = () => { window.focus(); n.close(); };
      } catch (err) {
        // Chrome on Android has no Notification constructor: only the service worker
        // may show one.
        navigator.serviceWorker?.ready.then((reg) => reg.showNotification(title, options));
      }
      return true;
    },
    relabel: draw,
  };
}
