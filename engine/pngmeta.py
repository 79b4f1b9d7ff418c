"""Workflow metadata in PNG files, written and read the way ComfyUI does.

ComfyUI's SaveImage stores a tEXt chunk `prompt` (the API-format graph as JSON) and one tEXt
chunk per key of the request's `extra_pnginfo`, each value JSON-encoded; the editor sends
`{"workflow": <UI JSON>}`, giving a `workflow` chunk. Automatic1111 writes a `parameters` chunk.

Reading walks the PNG's chunks itself and never decodes pixels: image data is skipped, not read,
and every text chunk and decompression is bounded, so a huge, truncated or hostile file gives a
`PngMetadataError` instead of a hang or an exhausted memory.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

from PIL.PngImagePlugin import PngInfo

from engine.workflow import Workflow, WorkflowFormatError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Workflows of hundreds of nodes take a few MB of JSON; what is beyond these is refused, so that a
# small file of compressed text (zlib expands up to 1000-fold) cannot take much memory or time.
MAX_TEXT_CHUNK = 16 * 1024 * 1024       # one tEXt/zTXt/iTXt chunk, compressed or not
MAX_TEXT_TOTAL = 32 * 1024 * 1024       # all text of one file, after decompression
MAX_CHUNKS = 100_000                    # a file of endless empty chunks must still end
TEXT_CHUNK_TYPES = (b"tEXt", b"zTXt", b"iTXt")
JSON_KEYS = ("prompt", "workflow")

PathOrBytes = str | Path | bytes | bytearray | memoryview


class PngMetadataError(ValueError):
    """The file is not a readable PNG, or holds no workflow; the message says which and why."""


@dataclass
class PngMetadata:
    """The text metadata of one PNG.

    `prompt` and `workflow` are the decoded JSON objects (None when absent or invalid, the latter
    explained in `problems`); `parameters` is A1111's text; `other` holds every other text chunk.
    """

    prompt: dict[str, Any] | None = None
    workflow: dict[str, Any] | None = None
    parameters: str | None = None
    other: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def png_text_chunks(prompt: dict | None, extra_pnginfo: dict | None) -> dict[str, str]:
    """The text chunks ComfyUI's SaveImage writes: `prompt`, then one per extra_pnginfo key, as JSON."""
    chunks: dict[str, str] = {}
    if prompt is not None:
        chunks["prompt"] = json.dumps(prompt)
    for key, value in (extra_pnginfo or {}).items():
        chunks[str(key)] = json.dumps(value)
    return chunks


def pnginfo(chunks: dict[str, str]) -> PngInfo:
    """A Pillow PngInfo holding `chunks` as tEXt (iTXt where a value is not Latin-1), for `Image.save`."""
    info = PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    return info


def read_png_text(source: PathOrBytes | BinaryIO) -> dict[str, str]:
    """Every text chunk of a PNG, keyword -> text, in file order (a repeated keyword keeps the last)."""
    text, _problems = _read_text_chunks(source)
    return text


def read_png_metadata(source: PathOrBytes | BinaryIO) -> PngMetadata:
    """The workflow metadata of a PNG file (path, bytes or binary file), without decoding its pixels."""
    text, problems = _read_text_chunks(source)
    meta = PngMetadata(problems=problems)
    for key, value in text.items():
        if key in JSON_KEYS:
            setattr(meta, key, _json_object(key, value, meta.problems))
        elif key == "parameters":
            meta.parameters = value
        else:
            meta.other[key] = value
    return meta


def workflow_from_png(source: PathOrBytes | BinaryIO, registry: Any) -> Workflow:
    """The workflow that made a PNG, from the best source it carries.

    In order: the `prompt` chunk (API format, runs as is); the `workflow` chunk (the editor's UI
    format, converted with the registry's node declarations); A1111's `parameters` text (rebuilt as
    a text-to-image graph). A source that is present but unusable is skipped for the next one.
    """
    return workflow_from_metadata(read_png_metadata(source), registry)


def workflow_from_metadata(meta: PngMetadata, registry: Any) -> Workflow:
    """`workflow_from_png` for metadata already read (so a caller reads the file once)."""
    problems = list(meta.problems)
    if meta.prompt is not None:
        try:
            return Workflow.from_api(meta.prompt)
        except WorkflowFormatError as exc:
            problems.append(f"the 'prompt' chunk is not an API-format workflow: {exc}")
    if meta.workflow is not None:
        from engine.ui_format import ui_to_api  # written alongside; imported only when needed

        try:
            converted = ui_to_api(meta.workflow, registry)
            return converted if isinstance(converted, Workflow) else Workflow.from_api(converted)
        except ValueError as exc:
            problems.append(f"the 'workflow' chunk could not be converted: {exc}")
    if meta.parameters is not None:
        from engine.a1111 import a1111_to_workflow, parse_a1111_parameters

        return a1111_to_workflow(parse_a1111_parameters(meta.parameters))
    detail = "; ".join(problems)
    raise PngMetadataError("no workflow in this PNG" + (f" ({detail})" if detail else ""))


def _json_object(key: str, value: str, problems: list[str]) -> dict[str, Any] | None:
    try:
        decoded = json.loads(value)
    except (json.JSONDecodeError, RecursionError) as exc:
        problems.append(f"the {key!r} chunk is not valid JSON: {exc}")
        return None
    if not isinstance(decoded, dict):
        problems.append(f"the {key!r} chunk is JSON but not an object (got {type(decoded).__name__})")
        return None
    return decoded


def _open(source: PathOrBytes | BinaryIO) -> tuple[IO[bytes], bool]:
    """A binary stream over `source`, and whether we opened it (and so must close it)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source)), True
    if isinstance(source, (str, Path)):
        try:
            return open(source, "rb"), True
        except OSError as exc:
            raise PngMetadataError(f"cannot open {str(source)!r}: {exc.strerror or exc}") from None
    if hasattr(source, "read") and hasattr(source, "seek"):
        return source, False
    raise TypeError(f"expected a path, bytes or a binary file, got {type(source).__name__}")


def _read_exactly(stream: IO[bytes], size: int, what: str) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise PngMetadataError(f"truncated PNG: the file ends inside {what}")
    return data


def _read_text_chunks(source: PathOrBytes | BinaryIO) -> tuple[dict[str, str], list[str]]:
    """Walk the chunks up to IEND, decoding text chunks and seeking past everything else."""
    stream, owned = _open(source)
    try:
        start = stream.tell()
        file_size = stream.seek(0, io.SEEK_END)
        stream.seek(start)
        if stream.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
            raise PngMetadataError("not a PNG file (wrong signature)")
        text: dict[str, str] = {}
        problems: list[str] = []
        total = 0
        for index in range(MAX_CHUNKS):
            length, chunk_type = struct.unpack(">I4s", _read_exactly(stream, 8, "a chunk header"))
            name = chunk_type.decode("latin-1")
            if not chunk_type.isalpha():
                raise PngMetadataError(f"corrupted PNG: invalid chunk type {chunk_type!r} at chunk {index}")
            if length > 0x7FFFFFFF:
                raise PngMetadataError(f"corrupted PNG: chunk {name} claims {length} bytes")
            if index == 0 and chunk_type != b"IHDR":
                raise PngMetadataError(f"corrupted PNG: the first chunk is {name}, not IHDR")
            if chunk_type == b"IEND":
                return text, problems
            if chunk_type not in TEXT_CHUNK_TYPES:
                _skip(stream, length + 4, file_size, name)  # data and CRC, unread
                continue
            if length > MAX_TEXT_CHUNK or total + length > MAX_TEXT_TOTAL:
                raise PngMetadataError(f"PNG text chunk {name} is too large ({length} bytes)")
            data = _read_exactly(stream, length, f"a {name} chunk")
            (crc,) = struct.unpack(">I", _read_exactly(stream, 4, f"a {name} chunk's checksum"))
            if zlib.crc32(chunk_type + data) != crc:
                raise PngMetadataError(f"corrupted PNG: checksum mismatch in a {name} chunk")
            try:
                key, value = _decode_text_chunk(chunk_type, data, MAX_TEXT_TOTAL - total)
            except PngMetadataError:
                raise
            except ValueError as exc:
                problems.append(f"unreadable {name} chunk skipped: {exc}")
                continue
            total += len(value)
            if key in text:
                problems.append(f"the {key!r} chunk appears more than once; the last one is used")
            text[key] = value
        raise PngMetadataError(f"corrupted PNG: more than {MAX_CHUNKS} chunks without IEND")
    finally:
        if owned:
            stream.close()


def _skip(stream: IO[bytes], size: int, file_size: int, name: str) -> None:
    """Move past `size` bytes without reading them, failing if the file is shorter."""
    if stream.tell() + size > file_size:
        raise PngMetadataError(f"truncated PNG: the file ends inside a {name} chunk")
    stream.seek(size, io.SEEK_CUR)


def _decode_text_chunk(chunk_type: bytes, data: bytes, budget: int) -> tuple[str, str]:
    """(keyword, text) of one tEXt, zTXt or iTXt chunk; ValueError says what is wrong with it."""
    keyword, sep, rest = data.partition(b"\0")
    if not sep or not 1 <= len(keyword) <= 79:
        raise ValueError("missing or invalid keyword")
    key = keyword.decode("latin-1")
    if chunk_type == b"tEXt":
        return key, rest.decode("latin-1")
    if chunk_type == b"zTXt":
        if rest[:1] != b"\0":
            raise ValueError(f"{key!r}: unknown compression method")
        return key, _inflate(rest[1:], budget, key).decode("latin-1")
    # iTXt: compression flag, compression method, language tag\0, translated keyword\0, UTF-8 text
    if len(rest) < 2:
        raise ValueError(f"{key!r}: header cut short")
    compressed, method = rest[0], rest[1]
    _language, sep1, rest = rest[2:].partition(b"\0")
    _translated, sep2, payload = rest.partition(b"\0")
    if not (sep1 and sep2):
        raise ValueError(f"{key!r}: header cut short")
    if compressed:
        if method != 0:
            raise ValueError(f"{key!r}: unknown compression method")
        payload = _inflate(payload, budget, key)
    try:
        return key, payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{key!r}: text is not UTF-8 ({exc.reason})") from None


def _inflate(data: bytes, budget: int, key: str) -> bytes:
    """zlib-decompress at most `budget` bytes: a compression bomb is refused, not expanded."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, max(budget, 0) + 1)
    except zlib.error as exc:
        raise ValueError(f"{key!r}: corrupt compressed text ({exc})") from None
    if len(out) > budget:
        raise PngMetadataError(f"PNG text chunk {key!r} decompresses to more than {budget} bytes")
    return out
