// The public sign-in screen: only explains the one-time link and offers the language toggle.
import { applyLabels, lang, setLang } from "./i18n.js";

setLang(lang());
applyLabels();
document.getElementById("lang").addEventListener("click", () => {
  setLang(lang() === "zh" ? "en" : "zh");
  applyLabels();
});
