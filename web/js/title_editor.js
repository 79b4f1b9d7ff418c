/**
 * Editing a title in place (a node's, a group's): a text field put where the title is shown;
 * Enter or leaving the field keeps the text, Escape drops it.
 */

/** `place(input)` puts the field on the page; `done(text)` gets the trimmed text, or null when cancelled. */
export function editTitle({ value, label, className = "title-editor", place, done }) {
  const input = Object.assign(document.createElement("input"), { className, value });
  input.setAttribute("aria-label", label);
  place(input);
  input.focus();
  input.select();
  let finished = false;
  const finish = (commit) => {
    if (finished) return;
    finished = true;
    done(commit ? input.value.trim() : null);
  };
  input.addEventListener("pointerdown", (e) => e.stopPropagation());   // clicks in the field are no drags
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") finish(true);
    if (e.key === "Escape") finish(false);
    e.stopPropagation();
  });
  input.addEventListener("blur", () => finish(true));
  return input;
}
