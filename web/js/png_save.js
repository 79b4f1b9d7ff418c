/**
 * Save as PNG: an image with the workflow in its `workflow` and `prompt` text chunks, as ComfyUI
 * writes them, so opening or dropping the file brings the graph back. The image is the newest
 * output shown on the graph, or else a drawing of the graph itself.
 */

import { isPng } from "./pngmeta.js";

const latin1 = new TextDecoder("latin1");

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(bytes) {
  let crc = 0xffffffff;
  for (const byte of bytes) crc = CRC_TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** JSON with every non-ASCII character escaped, so it fits a tEXt chunk (Latin-1) unchanged. */
export function asciiJson(value) {
  return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

function textChunk(key, text) {
  const data = new Uint8Array(key.length + 1 + text.length);
  for (let i = 0; i < key.length; i++) data[i] = key.charCodeAt(i);
  for (let i = 0; i < text.length; i++) data[key.length + 1 + i] = text.charCodeAt(i);
  const chunk = new Uint8Array(12 + data.length);
  const view = new DataView(chunk.buffer);
  view.setUint32(0, data.length);
  chunk.set([0x74, 0x45, 0x58, 0x74], 4);   // "tEXt"
  chunk.set(data, 8);
  view.setUint32(8 + data.length, crc32(chunk.subarray(4, 8 + data.length)));
  return chunk;
}

/** The PNG with `texts` ({key: ASCII text}) after its header, replacing text chunks of the same keys. */
export function withTextChunks(png, texts) {
  const bytes = new Uint8Array(png);
  if (!isPng(bytes)) throw new Error("not a PNG image");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const parts = [bytes.subarray(0, 8)];
  let offset = 8;
  while (offset + 12 <= bytes.length) {
    const length = view.getUint32(offset);
    const type = latin1.decode(bytes.subarray(offset + 4, offset + 8));
    const end = offset + 12 + length;
    const data = bytes.subarray(offset + 8, offset + 8 + length);
    const key = latin1.decode(data.subarray(0, Math.max(0, data.indexOf(0))));
    const replaced = ["tEXt", "zTXt", "iTXt"].includes(type) && key in texts;
    if (!replaced) parts.push(bytes.subarray(offset, end));
    if (type === "IHDR") parts.push(...Object.entries(texts).map(([k, text]) => textChunk(k, text)));
    if (type === "IEND") break;
    offset = end;
  }
  return new Blob(parts, { type: "image/png" });
}

/** The newest output image shown on the graph's nodes (a node's input image does not count). */
function shownOutputImage(status) {
  let found = null;
  for (const entry of status.values()) {
    for (const image of entry.images || []) if (image.type !== "input") found = image;
  }
  return found;
}

const canvasPng = (canvas) => new Promise((resolve, reject) =>
  canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("the image could not be encoded"))), "image/png"));

/** A drawing of the graph: each node a titled box, each link a curve (for a graph that never ran). */
function drawGraph(graph, drawnSize) {
  const nodes = [...graph.nodes.values()];
  const boxes = new Map(nodes.map((n) => [n.id, { x: n.pos[0], y: n.pos[1], size: drawnSize(n) }]));
  const pad = 40;
  const xs = [...boxes.values()].flatMap((b) => [b.x, b.x + b.size[0]]);
  const ys = [...boxes.values()].flatMap((b) => [b.y - 30, b.y + b.size[1]]);
  const left = (xs.length ? Math.min(...xs) : 0) - pad;
  const top = (ys.length ? Math.min(...ys) : 0) - pad;
  const canvas = document.createElement("canvas");
  canvas.width = Math.min(4096, Math.max(256, Math.ceil((xs.length ? Math.max(...xs) : 0) - left + pad)));
  canvas.height = Math.min(4096, Math.max(256, Math.ceil((ys.length ? Math.max(...ys) : 0) - top + pad)));
  const g = canvas.getContext("2d");
  g.fillStyle = "#202020";
  g.fillRect(0, 0, canvas.width, canvas.height);
  g.translate(-left, -top);
  g.strokeStyle = "#8a8";
  g.lineWidth = 2;
  for (const link of graph.toJSON().links || []) {
    const from = boxes.get(link[1]);
    const to = boxes.get(link[3]);
    if (!from || !to) continue;
    const [x1, y1, x2, y2] = [from.x + from.size[0], from.y + 20 + link[2] * 20, to.x, to.y + 20 + link[4] * 20];
    g.beginPath();
    g.moveTo(x1, y1);
    g.bezierCurveTo(x1 + 60, y1, x2 - 60, y2, x2, y2);
    g.stroke();
  }
  g.font = "14px sans-serif";
  for (const node of nodes) {
    const { x, y, size } = boxes.get(node.id);
    g.fillStyle = "#353535";
    g.fillRect(x, y - 26, size[0], size[1] + 26);
    g.fillStyle = "#e0e0e0";
    g.fillText(graph.title(node), x + 8, y - 8, size[0] - 16);
  }
  return canvasPng(canvas);
}

/** An image as PNG bytes: a PNG as it is, another format redrawn. */
async function pngBytes(blob) {
  const buffer = await blob.arrayBuffer();
  if (isPng(new Uint8Array(buffer, 0, Math.min(8, buffer.byteLength)))) return buffer;
  const bitmap = await createImageBitmap(blob);
  const canvas = Object.assign(document.createElement("canvas"), { width: bitmap.width, height: bitmap.height });
  canvas.getContext("2d").drawImage(bitmap, 0, 0);
  return (await canvasPng(canvas)).arrayBuffer();
}

/** The PNG to save for the shown workflow `ui` (UI format); `api` converts it to the API format. */
export async function workflowPng({ api, graph, view, ui }) {
  const image = shownOutputImage(view.status);
  let picture = null;
  if (image) {
    const response = await fetch(api.viewUrl(image));
    if (response.ok) picture = await pngBytes(await response.blob());
  }
  if (!picture) picture = await (await drawGraph(graph, (node) => view.drawnSize(node))).arrayBuffer();
  const texts = { workflow: asciiJson(ui) };
  try { texts.prompt = asciiJson(await api.convert(ui)); } catch { /* a graph that cannot run yet keeps its workflow */ }
  return withTextChunks(picture, texts);
}
