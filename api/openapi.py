"""`GET /openapi.json` (an OpenAPI 3.1 description of the API) and `GET /docs` (a page that renders it).

The description is written here, next to nothing else, from one table per route; a test checks
that every route the app serves is described and that the document is valid OpenAPI.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

OBJ: dict[str, Any] = {"type": "object"}
ERROR = {"type": "object", "properties": {"error": {"type": "object", "properties": {
    "type": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "string"},
    "extra_info": {"type": "object"}}}}}
PROMPT_REQUEST = {"type": "object", "required": ["prompt"], "properties": {
    "prompt": {"type": "object", "description": "API-format workflow (a UI-format one is converted)"},
    "client_id": {"type": "string"}, "prompt_id": {"type": "string"}, "number": {"type": "number"},
    "front": {"type": "boolean"}, "extra_data": {"type": "object"},
    "partial_execution_targets": {"type": "array", "items": {"type": "string"}}}}
PROMPT_RESPONSE = {"type": "object", "properties": {"prompt_id": {"type": "string"}, "number": {"type": "number"},
                                                    "node_errors": {"type": "object"}}}
QUEUE_ITEM = {"type": "array", "description": "[number, prompt_id, prompt, extra_data, outputs_to_execute]"}
CLEAR_DELETE = {"type": "object", "properties": {"clear": {"type": "boolean"},
                                                 "delete": {"type": "array", "items": {"type": "string"}}}}
UPLOAD_FORM: dict[str, Any] = {"type": "object", "required": ["image"], "properties": {
    "image": {"type": "string", "format": "binary"}, "subfolder": {"type": "string"},
    "type": {"type": "string", "enum": ["input", "temp", "output"]}, "overwrite": {"type": "string"}}}
UPLOAD_RESPONSE = {"type": "object", "properties": {"name": {"type": "string"}, "subfolder": {"type": "string"},
                                                    "type": {"type": "string"}}}


def _query(name: str, description: str, schema: dict[str, Any] | None = None, required: bool = False) -> dict:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": schema or {"type": "string"}}


def _path_param(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


FILE_INFO = {"type": "object", "properties": {"path": {"type": "string"}, "size": {"type": "integer"},
                                             "modified": {"type": "integer"}, "created": {"type": "integer"}}}
USER_FILE = {"description": "path relative to the user's folder, or its FileInfo with full_info=true",
             "oneOf": [{"type": "string"}, FILE_INFO]}
USER_FILE_PARAMS = [_query("overwrite", "false: refuse (409) when the file exists (default true)"),
                    _query("full_info", "true: answer {path, size, modified, created} instead of the path")]


# (method, path) → (tag, summary, extra operation fields)
OPERATIONS: dict[tuple[str, str], tuple[str, str, dict[str, Any]]] = {
    ("POST", "/prompt"): ("prompt", "Validate a workflow and queue it", {
        "body": PROMPT_REQUEST, "ok": PROMPT_RESPONSE, "errors": {"400": "invalid prompt: error and node_errors",
                                                              "503": "the queue is full"}}),
    ("GET", "/prompt"): ("prompt", "Queue length", {"ok": {"type": "object", "properties": {"exec_info": OBJ}}}),
    ("GET", "/queue"): ("queue", "Running and pending prompts", {"ok": {"type": "object", "properties": {
        "queue_running": {"type": "array", "items": QUEUE_ITEM},
        "queue_pending": {"type": "array", "items": QUEUE_ITEM}}}}),
    ("POST", "/queue"): ("queue", "Clear the queue and/or delete pending prompts", {"body": CLEAR_DELETE}),
    ("POST", "/interrupt"): ("queue", "Interrupt the running prompt (only if it is `prompt_id`, when given)", {
        "body": {"type": "object", "properties": {"prompt_id": {"type": "string"}}}}),
    ("GET", "/history"): ("history", "Finished prompts, oldest first", {"params": [
        _query("max_items", "at most this many (the latest, unless offset is given)", {"type": "integer"}),
        _query("offset", "skip this many of the oldest", {"type": "integer"})]}),
    ("GET", "/history/{prompt_id}"): ("history", "One finished prompt ({} until it finishes)", {
        "params": [_path_param("prompt_id")]}),
    ("POST", "/history"): ("history", "Clear the history and/or delete entries", {"body": CLEAR_DELETE}),
    ("GET", "/jobs"): ("jobs", "Jobs, newest first", {"params": [
        _query("status", "pending, running or finished"), _query("limit", "at most 1000", {"type": "integer"}),
        _query("offset", "skip this many", {"type": "integer"})]}),
    ("GET", "/jobs/{prompt_id}"): ("jobs", "One job's status, position, outputs and error", {
        "params": [_path_param("prompt_id")], "errors": {"404": "no such job"}}),
    ("GET", "/view"): ("files", "A file from the output, input or temp folder", {
        "params": [_query("filename", "file name", required=True), _query("subfolder", "subfolder"),
                   _query("type", "output (default), input or temp"),
                   _query("preview", "re-encode, e.g. webp;90 or jpeg;80"),
                   _query("channel", "rgba (default), rgb, or a (the alpha channel)")],
        "content": "image/*", "errors": {"400": "bad parameters", "403": "path leaves its folder",
                                         "404": "no such file"}}),
    ("POST", "/upload/image"): ("files", "Upload an image (renamed `name (1).ext` if a different file exists)", {
        "form": UPLOAD_FORM, "ok": UPLOAD_RESPONSE, "errors": {"413": "file or image too large"}}),
    ("POST", "/upload/mask"): ("files", "Upload a mask: its alpha is merged into `original_ref`", {
        "form": {**UPLOAD_FORM, "properties": {**UPLOAD_FORM["properties"], "original_ref": {
            "type": "string", "description": "JSON {filename, subfolder, type}"}}}, "ok": UPLOAD_RESPONSE}),
    ("GET", "/object_info"): ("nodes", "Every node type's declaration", {}),
    ("GET", "/object_info/{class_type}"): ("nodes", "One node type's declaration", {
        "params": [_path_param("class_type")], "errors": {"404": "unknown node type"}}),
    ("GET", "/system_stats"): ("system", "OS, memory, versions, devices and workers", {}),
    ("GET", "/workers"): ("system", "The backend's workers: device, state, running prompt, what each holds", {
        "ok": {"type": "object", "properties": {"backend": {"type": "string"},
                                                "workers": {"type": "array", "items": OBJ}}}}),
    ("GET", "/embeddings"): ("models", "Textual inversion names", {
        "ok": {"type": "array", "items": {"type": "string"}}}),
    ("GET", "/models"): ("models", "Model folder kinds", {"ok": {"type": "array", "items": {"type": "string"}}}),
    ("GET", "/models/{folder}"): ("models", "Model files of one kind", {
        "params": [_path_param("folder")], "ok": {"type": "array", "items": {"type": "string"}}}),
    ("POST", "/free"): ("system", "Drop cached outputs and models before the next prompt", {
        "body": {"type": "object", "properties": {"unload_models": {"type": "boolean"},
                                                  "free_memory": {"type": "boolean"}}}}),
    ("GET", "/features"): ("system", "The server's feature flags", {}),
    ("GET", "/extensions"): ("system", "Front-end extension scripts (none)", {}),
    ("GET", "/i18n"): ("system", "Custom node packs' translations, by locale (none)", {}),
    ("GET", "/workflow_templates"): ("system", "Custom node packs' template workflows, by pack (none)", {}),
    ("GET", "/templates/{name}"): ("system", "The template browser's index files (no templates)", {
        "params": [_path_param("name")], "errors": {"404": "not an index file"}}),
    ("GET", "/global_subgraphs"): ("system", "Custom node packs' subgraph blueprints (none)", {}),
    ("GET", "/experiment/models"): ("models", "Model folders: [{name, folders}]", {
        "ok": {"type": "array", "items": OBJ}}),
    ("GET", "/experiment/models/{folder}"): ("models", "Model files: [{name, pathIndex, modified, size}]", {
        "ok": {"type": "array", "items": OBJ}, "params": [_path_param("folder")],
        "errors": {"404": "unknown model folder"}}),
    ("GET", "/view_metadata/{folder}"): ("models", "A model's safetensors metadata", {
        "params": [_path_param("folder"), _query("filename", "the .safetensors file", required=True)],
        "errors": {"404": "no such file, or no metadata"}}),
    ("GET", "/internal/logs"): ("system", "The recent server log, as one string", {}),
    ("GET", "/internal/logs/raw"): ("system", "The recent server log: {entries: [{t, m}], size}", {}),
    ("GET", "/internal/folder_paths"): ("models", "Model folders by kind", {}),
    ("GET", "/userdata/user.css"): ("userdata", "The user's stylesheet (empty when there is none)", {
        "content": "text/css"}),
    ("POST", "/workflow/convert"): ("workflow", "Convert a UI-format workflow (JSON or PNG) to API format", {
        "body": OBJ, "errors": {"400": "not a convertible workflow"}}),
    ("GET", "/workflows"): ("workflow", "Names of the workflows shipped in workflows/", {
        "ok": {"type": "array", "items": {"type": "string"}}}),
    ("GET", "/workflows/{name}"): ("workflow", "One shipped workflow (API or UI format JSON)", {
        "params": [_path_param("name")], "errors": {"404": "no such workflow"}}),
    ("GET", "/userdata"): ("userdata", "The user's files in a folder, relative to it", {
        "params": [_query("dir", "the folder, e.g. workflows", required=True),
                   _query("recurse", "true: subfolders too"), _query("full_info", "true: FileInfo objects"),
                   _query("split", "true: [path, ...its parts] for each file")],
        "ok": {"type": "array", "items": {}}, "errors": {"403": "path leaves the user's folder",
                                                         "404": "no such folder"}}),
    ("GET", "/v2/userdata"): ("userdata", "Everything under a path of the user's folder, folders first", {
        "params": [_query("path", "a folder relative to the user's folder (default: all of it)")],
        "ok": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "path": {"type": "string"}, "type": {"enum": ["file", "directory"]},
            "size": {"type": "integer"}, "modified": {"type": "number"}}}},
        "errors": {"404": "no such folder"}}),
    ("GET", "/userdata/{file}"): ("userdata", "One of the user's files (`/` in the name URL-encoded)", {
        "params": [_path_param("file")], "content": "application/octet-stream",
        "errors": {"403": "path leaves the user's folder", "404": "no such file"}}),
    ("POST", "/userdata/{file}"): ("userdata", "Store the body as one of the user's files, atomically", {
        "params": [_path_param("file"), *USER_FILE_PARAMS], "raw_body": True, "ok": USER_FILE,
        "errors": {"403": "path leaves the user's folder", "409": "the file exists (overwrite=false)",
                   "413": "body over the server's limit"}}),
    ("DELETE", "/userdata/{file}"): ("userdata", "Delete one of the user's files", {
        "params": [_path_param("file")], "status": "204", "errors": {"404": "no such file"}}),
    ("POST", "/userdata/{file}/move/{dest}"): ("userdata", "Rename one of the user's files", {
        "params": [_path_param("file"), _path_param("dest"), *USER_FILE_PARAMS], "ok": USER_FILE,
        "errors": {"403": "path leaves the user's folder", "404": "no such file",
                   "409": "the destination exists (overwrite=false)"}}),
    ("GET", "/users"): ("settings", "Single-user mode: {storage: server, migrated}", {}),
    ("POST", "/users"): ("settings", "Adding users: refused (one user)", {}),
    ("GET", "/settings"): ("settings", "The user's settings", {}),
    ("POST", "/settings"): ("settings", "Merge an object into the user's settings", {"body": OBJ}),
    ("GET", "/settings/{id}"): ("settings", "One setting's value (null when unset)", {
        "params": [_path_param("id")], "ok": {}}),
    ("POST", "/settings/{id}"): ("settings", "Set one setting to the body's JSON value", {
        "params": [_path_param("id")], "body": {}}),
    ("GET", "/ws"): ("events", "WebSocket event stream (`?clientId=`, `?previews=1` for binary previews)", {
        "params": [_query("clientId", "your client id"), _query("previews", "1: send binary preview frames")],
        "status": "101"}),
    ("GET", "/openapi.json"): ("docs", "This document", {}),
    ("GET", "/docs"): ("docs", "A page that renders this document", {"content": "text/html"}),
}


def _operation(method: str, path: str, tag: str, summary: str, extra: dict[str, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {"tags": [tag], "summary": summary,
                                 "operationId": f"{method.lower()}_{path.strip('/').replace('/', '_')}"
                                 .replace("{", "").replace("}", "").replace(".", "_")}
    if extra.get("params"):
        operation["parameters"] = extra["params"]
    if "body" in extra:
        operation["requestBody"] = {"content": {"application/json": {"schema": extra["body"]}}}
    if extra.get("raw_body"):
        operation["requestBody"] = {"required": True, "content": {"application/octet-stream": {
            "schema": {"type": "string", "format": "binary"}}}}
    if "form" in extra:
        operation["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": extra["form"]}}}
    status = extra.get("status", "200")
    content_type = extra.get("content", "application/json")
    ok: dict[str, Any] = {"description": {"200": "OK", "204": "No content"}.get(status, "Switching protocols")}
    if status == "200":
        ok["content"] = {content_type: {"schema": extra.get("ok", OBJ) if content_type == "application/json"
                                        else {"type": "string"}}}
    responses: dict[str, Any] = {status: ok}
    for code, description in extra.get("errors", {}).items():
        responses[code] = {"description": description, "content": {"application/json": {"schema": ERROR}}}
    responses.setdefault("400", {"description": "Malformed request",
                                 "content": {"application/json": {"schema": ERROR}}})
    operation["responses"] = responses
    return operation


def build_spec() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), (tag, summary, extra) in OPERATIONS.items():
        paths.setdefault(path, {})[method.lower()] = _operation(method, path, tag, summary, extra)
    return {
        "openapi": "3.1.0",
        "info": {"title": "sdgraph server", "version": "0.1.0",
                 "description": "ComfyUI-compatible HTTP API. Every path is also served under /api. "
                                "With a token, send Authorization: Bearer TOKEN (or ?token= on GET)."},
        "servers": [{"url": "/"}, {"url": "/api"}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{}, {"bearer": []}],
        "paths": paths,
    }


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sdgraph API</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em}
code{background:#f3f3f3;padding:0 .3em}.op{margin:.4em 0}.m{display:inline-block;width:4.5em;font-weight:bold}
.p{color:#555;font-size:90%;margin-left:5em}</style></head>
<body><h1>sdgraph API</h1><p>Every path is also served under <code>/api</code>.
The machine-readable description is <a href="openapi.json">openapi.json</a>.</p><div id="ops">Loading…</div>
<script>
const token = new URLSearchParams(location.search).get("token");
fetch("openapi.json" + (token ? "?token=" + encodeURIComponent(token) : "")).then(r => r.json()).then(spec => {
  const root = document.getElementById("ops"); root.textContent = "";
  for (const [path, ops] of Object.entries(spec.paths)) for (const [method, op] of Object.entries(ops)) {
    const div = document.createElement("div"); div.className = "op";
    const m = document.createElement("span"); m.className = "m"; m.textContent = method.toUpperCase();
    const c = document.createElement("code"); c.textContent = path;
    div.append(m, c, " — " + op.summary);
    for (const p of op.parameters || []) {
      const d = document.createElement("div"); d.className = "p";
      d.textContent = p.in + " " + p.name + (p.required ? " (required)" : "") + ": " + (p.description || "");
      div.append(d);
    }
    root.append(div);
  }
});
</script></body></html>
"""


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(build_spec())


async def docs(request: web.Request) -> web.Response:
    return web.Response(text=DOCS_PAGE, content_type="text/html")


ROUTES = [("GET", "/openapi.json", openapi_json), ("GET", "/docs", docs)]
