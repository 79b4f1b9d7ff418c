/**
 * Widgets: the form controls for a node's constant inputs, generated from their definition.
 *
 * number (INT/FLOAT: min, max, step, round honoured; arrow keys and dragging the label step it),
 * seed (a number plus its control_after_generate mode), text, multiline, combo (choices; a value
 * the server does not offer is kept and marked missing), toggle, and the image upload of LoadImage.
 */

import { SEED_CONTROLS } from "./nodedefs.js";

export const MAX_RANDOM_SEED = Number.MAX_SAFE_INTEGER;
/** Screen pixels of a drag on a number's label per step. */
export const DRAG_PIXELS_PER_STEP = 5;

function element(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(el.dataset, value);
    else if (key in el && key !== "list") el[key] = value;
    else el.setAttribute(key, value);
  }
  el.append(...children.filter((c) => c != null));
  return el;
}

const decimalsOf = (x) => Math.max(0, Math.ceil(-Math.log10(x) - 1e-9));

/**
 * The grid a FLOAT is rounded to: its `round` option, else the precision of its step (ComfyUI's
 * front end: `step` is how far a click moves it, `round` what it keeps, so cfg 7.25 stays 7.25
 * with step 0.1, round 0.01); `round: false` keeps every digit.
 */
export function floatGrid(options) {
  if (options.round === false) return 0;
  if (Number(options.round) > 0) return Number(options.round);
  const step = Number(options.step);
  return step > 0 ? 10 ** -decimalsOf(step % 1 || 1) : 0.001;
}

/** Clamp to [min, max]; an INT snaps to its step grid (counted from min), a FLOAT to its rounding grid. */
export function normaliseNumber(widget, raw) {
  const { options } = widget;
  let value = typeof raw === "number" ? raw : Number(raw);
  if (!Number.isFinite(value)) value = Number(options.default ?? 0);
  const isInt = widget.type === "INT";
  const grid = isInt ? (Number(options.step) || 1) : floatGrid(options);
  const min = Number.isFinite(options.min) ? options.min : -Infinity;
  const max = Number.isFinite(options.max) ? options.max : Infinity;
  if (grid > 0) {
    const base = Number.isFinite(min) && isInt ? min : 0;
    value = base + Math.round((value - base) / grid) * grid;
  }
  value = Math.min(max, Math.max(min, value));
  if (isInt) return Math.round(value);
  return grid > 0 ? Number(value.toFixed(Math.min(decimalsOf(grid), 10))) : value;
}

/** How far one arrow key press or drag step moves a number: its step, else one unit of its grid. */
export function numberIncrement(widget) {
  const step = Number(widget.options.step);
  if (step > 0) return step;
  return widget.type === "INT" ? 1 : (floatGrid(widget.options) || 0.01);
}

/** The next seed after a run, by control mode. */
export function nextSeed(widget, value, control) {
  const min = Math.max(0, widget.options.min ?? 0);
  const max = Math.min(MAX_RANDOM_SEED, widget.options.max ?? MAX_RANDOM_SEED);
  if (control === "increment") return value + 1 > max ? min : value + 1;
  if (control === "decrement") return value - 1 < min ? max : value - 1;
  if (control === "randomize") return min + Math.floor(Math.random() * (max - min + 1));
  return value;
}

function numberInput(widget, value, onChange) {
  const { options } = widget;
  // FLOATs take any value on their rounding grid, not only multiples of the step.
  const input = element("input", { type: "number", className: "widget-input", value: String(value),
    step: widget.type === "INT" ? String(options.step ?? 1) : "any" });
  if (Number.isFinite(options.min)) input.min = String(options.min);
  if (Number.isFinite(options.max) && options.max <= Number.MAX_SAFE_INTEGER) input.max = String(options.max);
  const commit = (raw) => {
    const normal = normaliseNumber(widget, raw);
    input.value = String(normal);
    if (normal === value) return;
    value = normal;
    onChange(normal);
  };
  input.addEventListener("change", () => {
    const normal = normaliseNumber(widget, input.value);
    input.value = String(normal);
    value = normal;
    onChange(normal);
  });
  input.addEventListener("keydown", (e) => {
    if (e.key !== "ArrowUp" && e.key !== "ArrowDown") return;
    e.preventDefault();
    const steps = (e.key === "ArrowUp" ? 1 : -1) * (e.shiftKey ? 10 : 1);
    commit(normaliseNumber(widget, input.value) + steps * numberIncrement(widget));
  });
  input.stepBy = (steps) => commit(normaliseNumber(widget, input.value) + steps * numberIncrement(widget));
  return input;
}

/** Dragging a number's label sideways steps it, one step per DRAG_PIXELS_PER_STEP (Shift: ten). */
function dragToChange(label, input) {
  label.classList.add("draggable-number");
  label.title = `${label.title} (drag sideways to change)`;
  label.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    e.preventDefault();
    e.stopPropagation();   // not a node move
    label.setPointerCapture(e.pointerId);
    const start = { x: e.clientX, value: Number(input.value), steps: 0 };
    const move = (m) => {
      const steps = Math.trunc((m.clientX - start.x) / DRAG_PIXELS_PER_STEP) * (m.shiftKey ? 10 : 1);
      if (steps === start.steps) return;
      start.steps = steps;
      input.value = String(start.value);
      input.stepBy(steps);
    };
    const end = () => {
      label.removeEventListener("pointermove", move);
      label.removeEventListener("pointerup", end);
      label.removeEventListener("pointercancel", end);
    };
    label.addEventListener("pointermove", move);
    label.addEventListener("pointerup", end);
    label.addEventListener("pointercancel", end);
  });
}

function comboInput(widget, value, onChange) {
  const select = element("select", { className: "widget-input" });
  const choices = widget.options.choices || [];
  for (const choice of choices) select.append(element("option", { value: String(choice), textContent: String(choice) }));
  if (!choices.map(String).includes(String(value))) {
    select.append(element("option", { value: String(value), textContent: `${value} (missing)` }));
    select.classList.add("missing");
  }
  select.value = String(value);
  select.addEventListener("change", () => {
    select.classList.toggle("missing", !choices.map(String).includes(select.value));
    onChange(select.value);
  });
  return select;
}

/**
 * The row for one widget. `ctx`: {value, control, onChange(value), onControl(mode), onUpload(file)}.
 * Returns the row element; `row.setValue(v)` updates it from outside (e.g. after a seed control ran).
 */
export function createWidget(widget, ctx) {
  const row = element("div", { className: `widget widget-${widget.kind}`, dataset: { widget: widget.name } });
  const label = element("span", { className: "widget-label", textContent: widget.name, title: widget.options.tooltip || widget.name });
  let control;
  switch (widget.kind) {
    case "number":
    case "seed":
      control = numberInput(widget, ctx.value, ctx.onChange);
      break;
    case "multiline":
      control = element("textarea", { className: "widget-input", value: String(ctx.value ?? ""), spellcheck: false,
        rows: 4, placeholder: widget.name });
      control.addEventListener("input", () => ctx.onChange(control.value, { typing: true }));
      control.addEventListener("change", () => ctx.onChange(control.value));
      break;
    case "combo":
      control = comboInput(widget, ctx.value, ctx.onChange);
      break;
    case "toggle":
      control = element("input", { type: "checkbox", className: "widget-toggle", checked: Boolean(ctx.value) });
      control.addEventListener("change", () => ctx.onChange(control.checked));
      break;
    default:
      control = element("input", { type: "text", className: "widget-input", value: String(ctx.value ?? ""),
        spellcheck: false });
      control.addEventListener("input", () => ctx.onChange(control.value, { typing: true }));
      control.addEventListener("change", () => ctx.onChange(control.value));
  }
  control.setAttribute("aria-label", widget.name);
  if (widget.kind === "multiline") row.append(control);
  else row.append(label, control);
  if (widget.kind === "number" || widget.kind === "seed") dragToChange(label, control);
  if (widget.kind === "seed") {
    const mode = element("select", { className: "widget-input seed-control", title: "control after generate" });
    mode.setAttribute("aria-label", `${widget.name} control after generate`);
    for (const choice of SEED_CONTROLS) mode.append(element("option", { value: choice, textContent: choice }));
    mode.value = SEED_CONTROLS.includes(ctx.control) ? ctx.control : "fixed";
    mode.addEventListener("change", () => ctx.onControl(mode.value));
    row.append(mode);
  }
  if (widget.options.image_upload && ctx.onUpload) {
    const file = element("input", { type: "file", accept: "image/*", hidden: true, className: "upload-file" });
    const button = element("button", { type: "button", className: "upload-button", textContent: "Upload…",
      title: "Upload an image into the input folder" });
    button.addEventListener("click", () => file.click());
    file.addEventListener("change", () => { if (file.files[0]) ctx.onUpload(file.files[0]); file.value = ""; });
    row.append(button, file);
  }
  row.setValue = (value) => {
    if (control.type === "checkbox") control.checked = Boolean(value);
    else control.value = String(value);
  };
  return row;
}
