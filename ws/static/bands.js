// The risk map's colours: one per band, shaded within the band by the score.
const BAND_RGB = { red: [229, 72, 77], yellow: [245, 197, 24], blue: [59, 130, 246] };
export const BAND_COLOUR = Object.fromEntries(
  Object.entries(BAND_RGB).map(([band, rgb]) => [band, `rgb(${rgb.join(",")})`]));
export const NO_DATA = "#4b5563";
// Within a band the shade follows the score, so a district that is all "general" still
// shows where its risk gathers: blue is dim at 0 and full at 40; yellow and red start
// strong, so they stand out from any blue.
const BAND_SPAN = { blue: [0, 40, 0.22], yellow: [40, 60, 0.75], red: [60, 100, 0.85] };

/** A grid's fill: its band's colour, shaded by its score; grey without a score. */
export function areaColour(r) {
  if (!r || !BAND_RGB[r.band]) return NO_DATA;
  const [lo, hi, floor] = BAND_SPAN[r.band];
  const f = Math.min(1, Math.max(0, (Number(r.score) - lo) / (hi - lo)));
  const [red, green, blue] = BAND_RGB[r.band];
  return `rgba(${red},${green},${blue},${(floor + (1 - floor) * f).toFixed(2)})`;
}
