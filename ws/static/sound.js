// The wall screen's alert sounds: one tone pattern per severity, silent until the officer
// turns sound on (browsers block audio until a gesture on the page), and a mute that
// lasts across reloads. Every sound asked for is kept in `played` (newest last), heard or
// not, so the screen (and its tests) can tell what would have sounded.

const MUTE_KEY = "gw.mute";
// [frequency Hz, seconds] per tone: high is a fast falling triple, medium a double, low
// a single low tone; an escalation repeats the pattern once more.
export const PATTERNS = {
  high: [[988, 0.16], [784, 0.16], [988, 0.16]],
  medium: [[740, 0.2], [740, 0.2]],
  low: [[523, 0.3]],
};
const GAIN = { high: 0.32, medium: 0.22, low: 0.14 };

export class Sounds {
  constructor() {
    this.ctx = null;
    this.muted = localStorage.getItem(MUTE_KEY) === "1";
    this.played = [];
    this.onchange = () => {};
  }

  /** Whether sounds can be heard now: enabled by a gesture, the audio running, not muted. */
  audible() {
    return !this.muted && this.enabled();
  }

  enabled() {
    return Boolean(this.ctx) && this.ctx.state === "running";
  }

  /** Turn sound on; call from a click (the gesture browsers wait for). */
  async enable() {
    try {
      this.ctx = this.ctx || new AudioContext();
      await this.ctx.resume();
    } catch (err) {
      this.ctx = null;  // no audio on this device: the visual cues still show
    }
    this.onchange();  // a mute set before stays: unmuting is its own click
  }

  setMuted(muted) {
    this.muted = muted;
    localStorage.setItem(MUTE_KEY, muted ? "1" : "0");
    this.onchange();
  }

  /** Sound one alert of `severity` ("high", "medium", "low"); `escalated` repeats it. */
  play(severity, { escalated = false } = {}) {
    const tones = PATTERNS[severity] || PATTERNS.low;
    const heard = this.audible();
    this.played.push({ severity, escalated, heard, at: Date.now() });
    if (this.played.length > 100) this.played.shift();
    if (!heard) return false;
    const ctx = this.ctx;
    let at = ctx.currentTime;
    for (const [freq, len] of escalated ? [...tones, ...tones] : tones) {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.type = severity === "high" ? "square" : "sine";
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(GAIN[severity] || GAIN.low, at);
      gain.gain.exponentialRampToValueAtTime(0.001, at + len);
      osc.connect(gain).connect(ctx.destination);
      osc.start(at);
      osc.stop(at + len);
      at += len + 0.05;
    }
    return true;
  }
}
