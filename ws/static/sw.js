// The cockpit's service worker: the app shell (the page, its scripts, styles and icons)
// from a cache when the network is away, so the installed app opens on a phone that lost
// its signal, shows what it held and keeps its queued commands until the link is back.
//
// It answers only for the shell's own files, by exact path and without a query: never
// /api/*, /ws, /login (a login link carries its token in the query), /logout or
// /metrics, so no API response, session or token ever enters the cache. Network first:
// a new release is picked up whenever the gateway answers.

const CACHE = "gw-shell-v1";
const SHELL = [
  "/", "/app.js", "/net.js", "/i18n.js", "/worker.js", "/mygrids.js", "/notify.js",
  "/duty.js", "/officer.js", "/trace.js", "/station.js", "/style.css", "/favicon.svg",
  "/icon-192.png", "/icon-512.png", "/manifest.webmanifest", "/vendor/echarts.min.js",
  "/signin.html", "/signin.js",
];
const SHELL_SET = new Set(SHELL);

function storable(res) {
  // Only a plain 200 of this origin: never a redirect (to the sign-in page, for "/"
  // without a session), an error, or an opaque reply.
  return res.ok && res.status === 200 && !res.redirected && res.type === "basic";
}

async function keep(path, res) {
  if (!storable(res)) return;
  const cache = await caches.open(CACHE);
  await cache.put(path, res);
}

self.addEventListener("install", (ev) => {
  ev.waitUntil((async () => {
    // One by one: a file that cannot be fetched now is fetched when first used.
    await Promise.all(SHELL.map(async (path) => {
      try {
        await keep(path, await fetch(path, { credentials: "same-origin", cache: "no-cache" }));
      } catch (err) { /* offline at install: the file is cached when next fetched */ }
    }));
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (ev) => {
  ev.waitUntil((async () => {
    for (const name of await caches.keys()) if (name !== CACHE) await caches.delete(name);
    await self.clients.claim();
  })());
});

self.addEventListener("fetch", (ev) => {
  const req = ev.request;
  const url = new URL(req.url);
  if (req.method !== "GET" || url.origin !== self.location.origin || url.search
      || !SHELL_SET.has(url.pathname)) {
    return;  // not ours: the browser fetches it as if there were no service worker
  }
  ev.respondWith((async () => {
    try {
      const res = await fetch(req);
      await keep(url.pathname, res.clone());
      return res;
    } catch (err) {
      const hit = await caches.match(url.pathname, { cacheName: CACHE });
      if (hit) return hit;
      throw err;
    }
  })());
});

// A notification shown through the service worker (phones without the Notification
// constructor): a tap brings the cockpit forward, or opens it.
self.addEventListener("notificationclick", (ev) => {
  ev.notification.close();
  ev.waitUntil((async () => {
    const open = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    if (open.length) return open[0].focus();
    return self.clients.openWindow("/");
  })());
});
