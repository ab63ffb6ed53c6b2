// The cockpit's link to the gateway: one WebSocket that reconnects with backoff,
// resumes from the last stream id seen per channel, and queues commands while offline.

const QUEUE_KEY = "gw.queue";

export function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  // crypto.randomUUID needs a secure context; a phone on plain http over the LAN lacks it.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function newer(a, b) {
  // Stream ids "ms-seq": compare as number pairs, not as strings.
  if (!a) return b;
  const [am, as] = a.split("-").map(Number);
  const [bm, bs] = b.split("-").map(Number);
  return bm > am || (bm === am && bs > as) ? b : a;
}

export class Link {
  /**
   * @param {object} handlers onFrame(frame), onStatus("up"|"down"|"resumed"|"refused"),
   *   onResult(result)
   */
  constructor(handlers) {
    this.handlers = handlers;
    // The last stream id seen per channel, for resuming after a drop. Kept in memory
    // only: a page (re)loaded holds no records, so it starts from snapshots; a resume
    // point carried over a reload would replay only what is newer and show an empty view.
    this.last = {};
    this.queue = JSON.parse(localStorage.getItem(QUEUE_KEY) || "[]");
    this.ws = null;
    this.tries = 0;
    this.everUp = false;
  }

  start() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws`);
    this.ws = ws;
    this.sentHere = new Set();
    ws.onopen = () => {
      ws.send(JSON.stringify({ op: "hello", last: this.last }));
      this.tries = 0;
      this.handlers.onStatus(this.everUp ? "resumed" : "up");
      this.everUp = true;
      this.flush();
    };
    ws.onmessage = (ev) => this.receive(JSON.parse(ev.data));
    ws.onclose = (ev) => {
      this.ws = null;
      if (ev.code === 4401) { this.handlers.onStatus("refused"); return; }
      // The user's role, grids or stations changed: load the cockpit again for the new view.
      if (ev.code === 4403) { location.reload(); return; }
      this.handlers.onStatus("down");
      // Backoff 0.5 s doubling to 15 s, with jitter so a restarted gateway is not stormed.
      const wait = Math.min(15000, 500 * 2 ** this.tries) * (0.5 + Math.random() / 2);
      this.tries += 1;
      setTimeout(() => this.start(), wait);
    };
  }

  receive(frame) {
    if (frame.ch && frame.id) {
      this.last[frame.ch] = frame.snapshot ? frame.id : newer(this.last[frame.ch], frame.id);
    }
    if (frame.op === "error") {
      // The gateway could not take a frame of ours; a queued command it names is dropped
      // (sent again it would be refused again).
      console.warn("gateway refused a frame:", frame.reason);
      if (frame.req) {
        this.queue = this.queue.filter((c) => c.req !== frame.req);
        this.saveQueue();
      }
      return;
    }
    if (frame.op === "result") {
      if (frame.reason !== "kafka_unavailable") {
        this.queue = this.queue.filter((c) => c.req !== frame.req);
        this.saveQueue();
      }
      this.handlers.onResult?.(frame);
      return;
    }
    this.handlers.onFrame(frame);
  }

  /** Send a command now, or keep it (across reloads) until the link is up again. */
  command(cmd) {
    const full = { op: "cmd", req: uuid(), command_id: uuid(), ...cmd };
    this.queue.push(full);
    this.saveQueue();
    this.flush();
    return full;
  }

  flush() {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    for (const cmd of this.queue) {
      // Once per connection: a command resent after a drop keeps its command_id.
      if (this.sentHere.has(cmd.req)) continue;
      this.sentHere.add(cmd.req);
      this.ws.send(JSON.stringify(cmd));
    }
  }

  online() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  pending() {
    return this.queue;
  }

  saveQueue() {
    localStorage.setItem(QUEUE_KEY, JSON.stringify(this.queue));
  }
}

/** A short beep through WebAudio (no sound files); louder and double for high severity. */
export function beep({ high = false } = {}) {
  try {
    const ctx = beep.ctx || (beep.ctx = new AudioContext());
    const tones = high ? [880, 0.25, 660, 0.25] : [740, 0.15];
    let at = ctx.currentTime;
    for (let i = 0; i < tones.length; i += 2) {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.frequency.value = tones[i];
      gain.gain.setValueAtTime(high ? 0.3 : 0.15, at);
      gain.gain.exponentialRampToValueAtTime(0.001, at + tones[i + 1]);
      osc.connect(gain).connect(ctx.destination);
      osc.start(at);
      osc.stop(at + tones[i + 1]);
      at += tones[i + 1] + 0.05;
    }
  } catch (err) {
    // Browsers block audio until the first user gesture; the visual cue still shows.
  }
}
