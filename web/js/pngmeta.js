/**
 * PNG text chunks (tEXt, zTXt, iTXt) read in the browser: `prompt` and `workflow` from ComfyUI
 * and this engine, `parameters` from Automatic1111. Compressed chunks are inflated
 * with the browser's DecompressionStream.
 */

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];
const MAX_TEXT_BYTES = 32 * 2 ** 20;

export function isPng(bytes) {
  return bytes.length >= 8 && SIGNATURE.every((b, i) => bytes[i] === b);
}

async function inflate(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  const out = new Uint8Array(await new Response(stream).arrayBuffer());
  if (out.length > MAX_TEXT_BYTES) throw new Error("a PNG text chunk is too large");
  return out;
}

const latin1 = new TextDecoder("latin1");
const utf8 = new TextDecoder("utf-8");

/** `{keyword: text}` of every text chunk before the image data ends. */
export async function readPngText(buffer) {
  const bytes = new Uint8Array(buffer);
  if (!isPng(bytes)) throw new Error("not a PNG file");
  const view = new DataView(buffer instanceof ArrayBuffer ? buffer : bytes.buffer);
  const chunks = {};
  let offset = 8;
  while (offset + 8 <= bytes.length) {
    const length = view.getUint32(offset);
    const type = latin1.decode(bytes.subarray(offset + 4, offset + 8));
    const start = offset + 8;
    const end = start + length;
    if (end > bytes.length) break;
    const data = bytes.subarray(start, end);
    if (type === "tEXt" || type === "zTXt" || type === "iTXt") {
      const zero = data.indexOf(0);
      if (zero > 0) {
        const key = latin1.decode(data.subarray(0, zero));
        try {
          chunks[key] = await decodeText(type, data.subarray(zero + 1));
        } catch { /* an unreadable chunk is skipped, like a missing one */ }
      }
    }
    if (type === "IEND") break;
    offset = end + 4;
  }
  return chunks;
}

async function decodeText(type, rest) {
  if (type === "tEXt") return latin1.decode(rest);
  if (type === "zTXt") return latin1.decode(await inflate(rest.subarray(1)));
  // iTXt: compression flag, method, language tag \0, translated keyword \0, text (UTF-8)
  const compressed = rest[0] === 1;
  let position = 2;
  for (let field = 0; field < 2; field++) {
    const zero = rest.indexOf(0, position);
    if (zero < 0) throw new Error("truncated iTXt chunk");
    position = zero + 1;
  }
  const text = rest.subarray(position);
  return utf8.decode(compressed ? await inflate(text) : text);
}
