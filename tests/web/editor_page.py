"""A page object for the editor: find nodes, sockets and widgets; drag with the mouse; read the
graph the editor holds (`window.sdgraph.graph.toJSON()`, the UI format it saves)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the `browser` fixture imports Playwright, and fails the tests when it is missing
    from playwright.sync_api import Locator, Page

LOAD_TIMEOUT_MS = 30_000
RUN_TIMEOUT_MS = 60_000


class EditorPage:
    def __init__(self, page: Page, url: str) -> None:
        self.page = page
        self.url = url
        self.console: list[tuple[str, str, str]] = []   # (type, text, url)
        self.allowed_http_errors: list[tuple[int, str]] = []
        page.on("console", lambda m: self.console.append((m.type, m.text, m.location.get("url", ""))))
        page.on("pageerror", lambda e: self.console.append(("pageerror", str(e), "")))

    # --- page ------------------------------------------------------------------------------

    def open(self, query: str = "") -> None:
        self.page.goto(self.url + "/" + query)
        self.wait_ready()

    def wait_ready(self) -> None:
        self.page.wait_for_selector("body.ready", timeout=LOAD_TIMEOUT_MS)

    def reload(self) -> None:
        self.page.reload()
        self.wait_ready()

    def allow_http_error(self, status: int, path: str) -> None:
        """Chromium logs a refused fetch as a console error; allow one the test provokes on purpose."""
        self.allowed_http_errors.append((status, path))

    def unexpected_console_errors(self) -> list[str]:
        problems = []
        for kind, text, url in self.console:
            if kind not in ("error", "pageerror"):
                continue
            if any(f"status of {status}" in text and url.split("?")[0].endswith(path)
                   for status, path in self.allowed_http_errors):
                continue
            problems.append(f"{kind}: {text} ({url})")
        return problems

    def screenshot(self, path) -> None:
        self.page.screenshot(path=str(path))

    def js(self, expression: str, arg: Any = None) -> Any:
        return self.page.evaluate(expression, arg)

    # --- graph -----------------------------------------------------------------------------

    def workflow(self) -> dict:
        return self.js("() => sdgraph.graph.toJSON()")

    def links_into(self, node_id: int) -> dict[str, int]:
        """{input name: origin node id} of a node's linked inputs."""
        ui = self.workflow()
        node = next(n for n in ui["nodes"] if n["id"] == node_id)
        origins = {link[0]: link[1] for link in ui["links"]}
        return {i["name"]: origins[i["link"]] for i in node["inputs"] if i.get("link") is not None}

    def widget_value(self, node_id: int, name: str) -> Any:
        return self.js("([id, name]) => { const g = sdgraph.graph; return g.widgetValue(g.nodes.get(id), name); }",
                       [node_id, name])

    def node_ids(self) -> list[int]:
        return sorted(n["id"] for n in self.workflow()["nodes"])

    # --- elements --------------------------------------------------------------------------

    def node(self, node_id: int) -> Locator:
        return self.page.locator(f'.canvas .node[data-node-id="{node_id}"]')

    def widget(self, node_id: int, name: str) -> Locator:
        return self.node(node_id).locator(f'.widget[data-widget="{name}"]')

    def socket(self, node_id: int, direction: str, name: str) -> Locator:
        return self.node(node_id).locator(f'.socket.{direction}[data-name="{name}"] .dot')

    def set_widget(self, node_id: int, name: str, value: Any) -> None:
        """Type into a widget and commit it (Enter, or leaving a text area), as a person does."""
        control = self.widget(node_id, name).locator("input, textarea").first
        control.fill(str(value))
        if control.evaluate("e => e.tagName") == "TEXTAREA":
            control.blur()
        else:
            control.press("Enter")

    def choose(self, node_id: int, name: str, value: str, control: str = "select") -> None:
        self.widget(node_id, name).locator(control).first.select_option(value)

    @staticmethod
    def centre(locator: Locator) -> tuple[float, float]:
        box = locator.bounding_box()
        assert box, f"{locator} is not visible"
        return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2

    def drag(self, start: tuple[float, float], end: tuple[float, float], modifiers: tuple[str, ...] = ()) -> None:
        mouse = self.page.mouse
        for key in modifiers:
            self.page.keyboard.down(key)
        mouse.move(*start)
        mouse.down()
        mouse.move((start[0] + end[0]) / 2, (start[1] + end[1]) / 2, steps=4)
        mouse.move(*end, steps=4)
        mouse.up()
        for key in modifiers:
            self.page.keyboard.up(key)

    def drag_between(self, source: Locator, target: Locator) -> None:
        self.drag(self.centre(source), self.centre(target))

    def empty_point(self) -> tuple[float, float]:
        """A point on the canvas background, away from every node."""
        return self.js("""() => {
            const rect = sdgraph.view.root.getBoundingClientRect();
            for (let y = rect.bottom - 20; y > rect.top; y -= 20)
            for (let x = rect.left + 20; x < rect.right; x += 20) {
                const hit = document.elementFromPoint(x, y);
                if (hit === sdgraph.view.root) return [x, y];
            }
            throw new Error("no empty point");
        }""")

    def open_palette(self, query: str = "") -> Locator:
        """Double-click the empty canvas and type into the palette's search; returns the palette."""
        x, y = self.empty_point()
        self.page.mouse.dblclick(x, y - 150)
        palette = self.page.locator(".palette")
        palette.locator("input").fill(query)
        return palette

    def add_from_palette(self, query: str) -> None:
        """Add the palette's first answer to a search."""
        self.open_palette(query)
        self.page.keyboard.press("Enter")

    # --- keyboard --------------------------------------------------------------------------

    def focused(self, selector: str) -> bool:
        """Whether the element that has the focus matches `selector`."""
        return self.js("(s) => Boolean(document.activeElement?.matches(s))", selector)

    def tab_to(self, selector: str, limit: int = 400) -> None:
        """Press Tab (Shift+Tab when the element comes earlier in the page) until `selector` has the focus."""
        backwards = self.js("""(s) => {
            const target = document.querySelector(s), here = document.activeElement;
            if (!target) throw new Error(`nothing matches ${s}`);
            const after = target.compareDocumentPosition(here) & Node.DOCUMENT_POSITION_FOLLOWING;
            return Boolean(here && here !== document.body && after);
        }""", selector)
        for _ in range(limit):
            if self.focused(selector):
                return
            self.page.keyboard.press("Shift+Tab" if backwards else "Tab")
        raise AssertionError(f"Tab never reached {selector}")

    def answer(self, choice: str) -> None:
        """Answer the editor's question (e.g. about unsaved changes): "tab", "replace", "close" or "cancel"."""
        self.page.locator(f'.dialog button[data-choice="{choice}"]').click()
        self.page.locator(".dialog").wait_for(state="detached")

    def toasts(self) -> list[str]:
        return self.page.locator(".toast").all_inner_texts()

    # --- running ---------------------------------------------------------------------------

    def record_events(self) -> None:
        """Note every WebSocket event, and what the node showed at each progress and preview event."""
        self.js("""() => {
            window.seen = [];
            for (const type of ["execution_start", "executing", "progress", "executed", "execution_success",
                                "execution_error", "preview", "status"]) {
                sdgraph.api.addEventListener(type, (e) => {
                    const entry = { type, node: e.detail.node ?? null };
                    if (type === "progress") {
                        const el = document.querySelector(`.canvas .node[data-node-id="${e.detail.node}"]`);
                        entry.value = e.detail.value; entry.max = e.detail.max;
                        entry.highlighted = el.classList.contains("executing");
                        entry.bar = el.querySelector(".node-progress-bar").style.width;
                    }
                    if (type === "preview") {
                        const node = `.canvas .node[data-node-id="${e.detail.node}"]`;
                        const img = document.querySelector(`${node} img.preview-image`);
                        entry.shown = Boolean(img);
                    }
                    window.seen.push(entry);
                });
            }
        }""")

    def events(self) -> list[dict]:
        return self.js("() => window.seen")

    def queue(self) -> None:
        self.page.click("#btn-queue")

    def wait_for_output_image(self, node_id: int, timeout: int = RUN_TIMEOUT_MS) -> Locator:
        image = self.node(node_id).locator("img.output-image")
        image.first.wait_for(timeout=timeout)
        self.page.wait_for_function(
            "(id) => [...document.querySelectorAll(`.canvas .node[data-node-id='${id}'] img.output-image`)]"
            ".every((img) => img.complete && img.naturalWidth > 0)", arg=node_id, timeout=timeout)
        return image

    def drop_file(self, target: Locator, name: str, data: bytes, mime: str) -> None:
        """Drop a file on an element, as dragging it from the desktop does."""
        handle = self.page.evaluate_handle("""([name, bytes, mime]) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], name, { type: mime }));
            return transfer;
        }""", [name, list(data), mime])
        box = target.bounding_box()
        point = {"clientX": box["x"] + box["width"] / 2, "clientY": box["y"] + box["height"] / 2}
        target.dispatch_event("dragover", {"dataTransfer": handle, **point})
        target.dispatch_event("drop", {"dataTransfer": handle, **point})


def same_graph(a: dict, b: dict) -> bool:
    """Same nodes (type, title, mode, widget values, sockets) and the same links, ignoring layout."""
    def essence(ui: dict) -> str:
        nodes = sorted(({"id": n["id"], "type": n["type"], "title": n.get("title"), "mode": n.get("mode", 0),
                         "widgets_values": n.get("widgets_values"),
                         "inputs": [(i["name"], i["type"], i.get("link")) for i in n.get("inputs", [])],
                         "outputs": [(o["name"], o["type"], sorted(o.get("links") or []))
                                     for o in n.get("outputs", [])]}
                        for n in ui["nodes"]), key=lambda n: n["id"])
        return json.dumps({"nodes": nodes, "links": sorted(map(list, ui["links"]))}, sort_keys=True)
    return essence(a) == essence(b)
