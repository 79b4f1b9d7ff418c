/**
 * The mask editor for inpainting: paint or erase a mask over a LoadImage node's image (brush size,
 * feather, invert, clear) and save it as ComfyUI's does, through `/upload/mask`: the server stores a
 * copy of the image (`original_ref`) whose alpha is the mask, in input/clipspace, and the node then
 * loads that copy. LoadImage's MASK output is 1 − alpha, so what is painted here is what is inpainted.
 */

const MASK_COLOUR = [255, 40, 90];   // how the mask is shown; only its alpha is saved

const el = (tag, props = {}, children = []) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
};

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error("the image could not be loaded"));
    image.src = url;
  });
}

/** The image a node's upload widget names, as a /view reference ("sub/dir/name.png" → subfolder and filename). */
export function imageRef(value) {
  const text = String(value || "").replace(/ \[(input|output|temp)\]$/, "");
  const cut = text.lastIndexOf("/");
  return { filename: text.slice(cut + 1), subfolder: cut >= 0 ? text.slice(0, cut) : "", type: "input" };
}

export class MaskEditor {
  /** `editor`: the Editor of main.js (api, graph, view, toast). */
  constructor(editor) {
    this.editor = editor;
    this.brush = 24;
    this.feather = 0.3;
    this.erasing = false;
  }

  /** The upload widget of a node that has an image to mask, or null. */
  uploadWidget(node) {
    const widget = this.editor.graph.def(node)?.widgets.find((w) => w.options.image_upload);
    return widget && this.editor.graph.widgetValue(node, widget.name) ? widget : null;
  }

  async open(node) {
    const widget = this.uploadWidget(node);
    if (!widget) return;
    this.node = node;
    this.widget = widget;
    this.ref = imageRef(this.editor.graph.widgetValue(node, widget.name));
    let image;
    try {
      image = await loadImage(this.editor.api.viewUrl(this.ref));
    } catch (error) {
      this.editor.toast(`Mask editor: ${error.message}`, "error");
      return;
    }
    this.build(image);
  }

  build(image) {
    const { naturalWidth: w, naturalHeight: h } = image;
    this.picture = el("canvas", { className: "mask-picture", width: w, height: h });
    this.mask = el("canvas", { className: "mask-layer", width: w, height: h });
    // The picture is drawn opaque; an alpha it already has is the mask painted before.
    const pctx = this.picture.getContext("2d", { willReadFrequently: true });
    pctx.drawImage(image, 0, 0);
    const pixels = pctx.getImageData(0, 0, w, h);
    const mask = new ImageData(w, h);
    for (let i = 0; i < pixels.data.length; i += 4) {
      mask.data.set([...MASK_COLOUR, 255 - pixels.data[i + 3]], i);
      pixels.data[i + 3] = 255;
    }
    pctx.putImageData(pixels, 0, 0);
    this.mask.getContext("2d", { willReadFrequently: true }).putImageData(mask, 0, 0);

    const range = (label, name, min, max, step, value, set) => {
      const input = el("input", { type: "range", min, max, step, value, name });
      input.setAttribute("aria-label", label);
      input.addEventListener("input", () => set(Number(input.value)));
      return el("label", { className: "mask-control" }, [label, input]);
    };
    const button = (label, name, action, extra = "") => {
      const b = el("button", { type: "button", className: `button ${extra}`, textContent: label });
      b.dataset.action = name;
      b.addEventListener("click", action);
      return b;
    };
    const paint = button("Paint", "paint", () => this.setErasing(false), "active");
    const erase = button("Erase", "erase", () => this.setErasing(true));
    this.modeButtons = { paint, erase };
    const toolbar = el("div", { className: "mask-toolbar" }, [
      range("Brush size", "brush", 1, 200, 1, this.brush, (v) => { this.brush = v; }),
      range("Feather", "feather", 0, 1, 0.05, this.feather, (v) => { this.feather = v; }),
      paint, erase,
      button("Invert", "invert", () => this.invert()),
      button("Clear", "clear", () => this.clear()),
      el("span", { className: "spacer" }),
      button("Cancel", "cancel", () => this.close()),
      button("Save", "save", () => this.save(), "primary"),
    ]);
    const stage = el("div", { className: "mask-stage" }, [this.picture, this.mask]);
    stage.style.aspectRatio = `${w} / ${h}`;
    this.root = el("div", { className: "dialog-backdrop mask-editor" }, [
      el("div", { className: "mask-panel" }, [toolbar, stage])]);
    this.root.setAttribute("role", "dialog");
    this.root.setAttribute("aria-label", "Mask editor");
    this.root.addEventListener("keydown", (e) => { if (e.key === "Escape") this.close(); e.stopPropagation(); });
    this.mask.addEventListener("pointerdown", (e) => this.strokeStart(e));
    this.mask.addEventListener("pointermove", (e) => this.strokeMove(e));
    this.mask.addEventListener("pointerup", () => { this.last = null; });
    document.body.append(this.root);
  }

  setErasing(erasing) {
    this.erasing = erasing;
    this.modeButtons.paint.classList.toggle("active", !erasing);
    this.modeButtons.erase.classList.toggle("active", erasing);
  }

  /** A client point in image pixels (the stage is scaled to fit the window). */
  toImage(e) {
    const box = this.mask.getBoundingClientRect();
    return [(e.clientX - box.left) * (this.mask.width / box.width), (e.clientY - box.top) * (this.mask.height / box.height)];
  }

  strokeStart(e) {
    if (e.button !== 0) return;
    this.mask.setPointerCapture(e.pointerId);
    this.last = this.toImage(e);
    this.dab(this.last);
  }

  strokeMove(e) {
    if (!this.last) return;
    const point = this.toImage(e);
    const [x0, y0] = this.last;
    const steps = Math.max(1, Math.ceil(Math.hypot(point[0] - x0, point[1] - y0) / Math.max(1, this.brush / 6)));
    for (let i = 1; i <= steps; i++) this.dab([x0 + ((point[0] - x0) * i) / steps, y0 + ((point[1] - y0) * i) / steps]);
    this.last = point;
  }

  /** One round brush mark: solid inside, fading to nothing over the feathered rim. */
  dab([x, y]) {
    const ctx = this.mask.getContext("2d");
    const radius = this.brush / 2;
    const [r, g, b] = MASK_COLOUR;
    let fill = `rgb(${r} ${g} ${b})`;
    if (this.feather > 0.01) {     // a gradient between two equal circles paints nothing: none without feather
      fill = ctx.createRadialGradient(x, y, radius * (1 - this.feather), x, y, radius);
      fill.addColorStop(0, `rgb(${r} ${g} ${b} / 100%)`);
      fill.addColorStop(1, `rgb(${r} ${g} ${b} / 0%)`);
    }
    ctx.globalCompositeOperation = this.erasing ? "destination-out" : "source-over";
    ctx.fillStyle = fill;
    ctx.beginPath();
    ctx.arc(x, y, radius, 0, Math.PI * 2);
    ctx.fill();
    ctx.globalCompositeOperation = "source-over";
  }

  invert() {
    const ctx = this.mask.getContext("2d", { willReadFrequently: true });
    const data = ctx.getImageData(0, 0, this.mask.width, this.mask.height);
    for (let i = 0; i < data.data.length; i += 4) data.data.set([...MASK_COLOUR, 255 - data.data[i + 3]], i);
    ctx.putImageData(data, 0, 0);
  }

  clear() { this.mask.getContext("2d").clearRect(0, 0, this.mask.width, this.mask.height); }

  /** The mask as ComfyUI uploads it: a PNG whose alpha is 0 where painted (its colours are not used). */
  maskPng() {
    const { width: w, height: h } = this.mask;
    const painted = this.mask.getContext("2d", { willReadFrequently: true }).getImageData(0, 0, w, h);
    const out = new ImageData(w, h);
    for (let i = 3; i < out.data.length; i += 4) out.data[i] = 255 - painted.data[i];
    const canvas = el("canvas", { width: w, height: h });
    canvas.getContext("2d").putImageData(out, 0, 0);
    return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  }

  async save() {
    const { api, graph, view } = this.editor;
    const form = new FormData();
    form.append("image", await this.maskPng(), `clipspace-mask-${Date.now()}.png`);
    form.append("type", "input");
    form.append("subfolder", "clipspace");
    form.append("original_ref", JSON.stringify(this.ref));
    try {
      const answer = await api.request("POST", "/upload/mask", form);
      const name = answer.subfolder ? `${answer.subfolder}/${answer.name}` : answer.name;
      const choices = this.widget.options.choices;
      if (choices && !choices.includes(name)) choices.push(name);
      graph.setWidgetValue(this.node, this.widget.name, name);
      view.setStatus(this.node.id, { images: [{ filename: answer.name, subfolder: answer.subfolder, type: answer.type }] });
      view.renderNodes([this.node.id]);
      this.editor.toast(`Mask saved: ${name}`, "info");
      this.close();
    } catch (error) {
      this.editor.toast(`Saving the mask failed: ${error.message}`, "error");
    }
  }

  close() {
    this.root?.remove();
    this.root = null;
    this.last = null;
  }
}
