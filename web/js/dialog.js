/**
 * A modal question in the page (not `window.confirm`, which blocks the page and cannot offer
 * more than two answers): a title, a sentence and a row of choices. Escape or a click outside
 * answers null, as Cancel does.
 */

/** Ask; resolves to the chosen `value`, or null. `choices`: [{label, value, primary?}]. */
export function ask({ title, text, choices }) {
  return new Promise((resolve) => {
    const backdrop = Object.assign(document.createElement("div"), { className: "dialog-backdrop" });
    const dialog = Object.assign(document.createElement("div"), { className: "dialog" });
    dialog.setAttribute("role", "alertdialog");
    dialog.setAttribute("aria-modal", "true");
    dialog.setAttribute("aria-label", title);
    const buttons = Object.assign(document.createElement("div"), { className: "dialog-buttons" });
    const finish = (value) => {
      backdrop.remove();
      document.removeEventListener("keydown", onKey, true);
      resolve(value);
    };
    const onKey = (e) => {
      if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); finish(null); }
    };
    for (const choice of [...choices, { label: "Cancel", value: null }]) {
      const button = Object.assign(document.createElement("button"), { type: "button", textContent: choice.label,
        className: `button${choice.primary ? " primary" : ""}` });
      button.dataset.choice = choice.value ?? "cancel";
      button.addEventListener("click", () => finish(choice.value));
      buttons.append(button);
    }
    dialog.append(Object.assign(document.createElement("div"), { className: "dialog-title", textContent: title }),
      Object.assign(document.createElement("p"), { className: "dialog-text", textContent: text }), buttons);
    backdrop.append(dialog);
    backdrop.addEventListener("pointerdown", (e) => { if (e.target === backdrop) finish(null); });
    document.addEventListener("keydown", onKey, true);
    document.body.append(backdrop);
    (buttons.querySelector(".primary") || buttons.firstChild).focus();
  });
}
