"""The web editor on big graphs: frame times and edit latencies measured from the page.

    python bench/editor_big_graphs.py [--sizes 150 300 1000] [--repeats 3] [--frames 90] [--edits 5] [--before REV]

Starts the real server (as tests/web do) and Debian's headless Chromium (Playwright), generates
graphs of each size from the server's real node types (about 1.3 links per node, laid out in
columns), and for each repeat: opens it (`sdgraph.load`, until the next painted frame), pans at the
fitted view and at 100 %, zooms in and out, then adds, connects, deletes a node and undoes
(`--edits` times in a row). Pan and zoom are driven from `requestAnimationFrame` through the view's
own `panBy`/`zoomAt` (what the pointer handlers call); fps and the p95 frame come from the rAF
timestamps. An edit's time runs from the call to the end of the next frame, at rest (400 ms after
the last pan). Prints the median of the repeats and the CPU model; for the edits, the median of
all their samples and (in brackets) the minimum.
With `--before REV`, a second page runs the editor's files (web/) as they were at git revision REV
(served from `git show`, the same server otherwise), and the repeats alternate between the two
pages, so both are measured side by side under the same load of a shared machine.
Targets (issue 21): pan/zoom >= 50 fps at 300 nodes, edits < 30 ms, 1,000 nodes open < 1 s.
"""

from __future__ import annotations

import argparse
import mimetypes
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS, ServerProcess  # noqa: E402

# Runs in the page: builds a graph of `size` nodes from real node types in a scratch Graph (so
# nothing is drawn while building) and returns its UI-format JSON.
GENERATE_JS = """
(size) => {
  const editor = window.sdgraph;
  const graph = new editor.graph.constructor(editor.defs);
  const types = editor.defs.list().filter((d) => !d.frontendOnly && d.inputs.length && d.outputs.length
    && !/_for_testing|deprecated/i.test(d.category)).map((d) => d.type);
  const sources = editor.defs.list().filter((d) => !d.frontendOnly && !d.inputs.length && d.outputs.length)
    .map((d) => d.type);
  let seed = 12345;
  const random = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
  const perColumn = Math.ceil(Math.sqrt(size));
  const ids = [];
  for (let i = 0; i < size; i++) {
    const pool = i % 5 === 0 ? sources : types;
    const type = pool[Math.floor(random() * pool.length)];
    const column = Math.floor(i / perColumn), row = i % perColumn;
    ids.push(graph.addNode(type, [column * 420, row * 320], { seedControl: "fixed" }).id);
  }
  const wanted = Math.round(size * 1.3);
  let links = 0;
  for (let attempt = 0; attempt < size * 40 && links < wanted; attempt++) {
    const t = 1 + Math.floor(random() * (ids.length - 1));
    const target = graph.nodes.get(ids[t]);
    const free = target.inputs.map((input, slot) => (input.link == null ? slot : -1)).filter((s) => s >= 0);
    if (!free.length) continue;
    const slot = free[Math.floor(random() * free.length)];
    for (let back = 1; back <= 3 * perColumn && t - back >= 0; back++) {
      const origin = graph.nodes.get(ids[t - back]);
      const out = origin.outputs.findIndex((o, s) => graph.refusal(origin.id, s, target.id, slot) === null);
      if (out >= 0) { graph.connect(origin.id, out, target.id, slot); links++; break; }
    }
  }
  return graph.toJSON();
}
"""

# Runs in the page: opens `ui`, then measures; returns one repeat's figures.
MEASURE_JS = """
async ([ui, frames, edits]) => {
  const editor = window.sdgraph, view = editor.view;
  const settle = () => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
  const timed = async (edit) => {
    const t0 = performance.now(); edit(); await settle(); return performance.now() - t0;
  };
  const rect = view.root.getBoundingClientRect();
  const cx = rect.left + rect.width / 2, cy = rect.top + rect.height / 2;
  const animate = (step) => new Promise((resolve) => {
    const stamps = [];
    const tick = (now) => {
      stamps.push(now);
      if (stamps.length > frames) {
        const gaps = stamps.slice(1).map((t, i) => t - stamps[i]).sort((a, b) => a - b);
        resolve({ fps: 1000 * gaps.length / (stamps.at(-1) - stamps[0]), p95: gaps[Math.floor(gaps.length * 0.95)] });
        return;
      }
      step(stamps.length);
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  await settle();
  const result = {};
  result.open = await timed(() => editor.load(ui, "bench", { fit: true, saved: true }));
  await settle();
  const panFit = await animate((i) => view.panBy(i % 60 < 30 ? 12 : -12, i % 40 < 20 ? 5 : -5));
  result.pan_fit_fps = panFit.fps; result.pan_fit_p95 = panFit.p95;
  result.zoom_scale = view.scale;
  const zoom = await animate((i) => view.zoomAt(cx, cy, i % 40 < 20 ? 1.06 : 1 / 1.06));
  result.zoom_fps = zoom.fps; result.zoom_p95 = zoom.p95;
  view.fit();
  view.zoomAt(cx, cy, 1 / view.scale);      // 100 %, around the middle of the graph
  await settle();
  const pan100 = await animate((i) => view.panBy(i % 60 < 30 ? 12 : -12, i % 40 < 20 ? 5 : -5));
  result.pan_100_fps = pan100.fps; result.pan_100_p95 = pan100.p95;
  // Edits are timed at rest: after the pan's gesture has ended (the editor draws a moving view on a canvas).
  await new Promise((resolve) => setTimeout(resolve, 400));
  await settle();
  const [wx, wy] = view.toWorld(cx, cy);
  for (const key of ["add", "connect", "delete", "undo"]) result[key] = [];
  for (let cycle = 0; cycle < edits; cycle++) {
    let added;
    result.add.push(await timed(() => { added = editor.addNode("KSampler", [wx + 30 * cycle, wy]); }));
    const origin = [...editor.graph.nodes.values()].find((n) => n.id !== added.id
      && n.outputs.some((o, s) => editor.graph.refusal(n.id, s, added.id, 0) === null));
    const slot = origin.outputs.findIndex((o, s) => editor.graph.refusal(origin.id, s, added.id, 0) === null);
    result.connect.push(await timed(() => editor.graph.connect(origin.id, slot, added.id, 0)));
    view.select([added.id]);
    result.delete.push(await timed(() => editor.deleteSelected()));
    result.undo.push(await timed(() => editor.undoStep()));
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  result.nodes = editor.graph.nodes.size;
  result.links = editor.graph.links.size;
  return result;
}
"""

COLUMNS = [("open", "open ms"), ("pan_fit_fps", "pan fps (fit)"), ("pan_fit_p95", "p95 ms"),
           ("pan_100_fps", "pan fps (100%)"), ("pan_100_p95", "p95 ms"), ("zoom_fps", "zoom fps"),
           ("zoom_p95", "p95 ms"), ("add", "add ms"), ("connect", "connect ms"), ("delete", "delete ms"),
           ("undo", "undo ms")]
EDIT_KEYS = {"add", "connect", "delete", "undo"}


def cpu_model() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), "?")
    cpus = next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("CPU(s)")), "?")
    return f"{model} ({cpus} CPUs)"


def serve_revision(page, revision: str) -> None:
    """Answer the page's requests for the editor's own files (web/) with their text at `revision`."""
    root = Path(__file__).resolve().parents[1]

    def handle(route) -> None:
        path = route.request.url.split("://", 1)[1].split("/", 1)[1].split("?", 1)[0] or "index.html"
        shown = subprocess.run(["git", "show", f"{revision}:web/{path}"], cwd=root, capture_output=True)
        if shown.returncode:
            route.continue_()
            return
        route.fulfill(status=200, body=shown.stdout, content_type=mimetypes.guess_type(path)[0] or "text/plain")

    page.route(lambda url: url.split("?", 1)[0].endswith((".js", ".css", ".html", "/")), handle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[150, 300, 1000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--edits", type=int, default=5, help="add/connect/delete/undo cycles per repeat")
    parser.add_argument("--before", metavar="REV", help="also measure web/ at this git revision, interleaved")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    rows = []
    with tempfile.TemporaryDirectory() as base:
        server = ServerProcess(Path(base))
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                errors: list[str] = []
                pages = {}
                for variant in (["before"] if args.before else []) + ["after" if args.before else "current"]:
                    page = browser.new_page(viewport={"width": 1440, "height": 900})
                    page.on("pageerror", lambda e: errors.append(str(e)))
                    if variant == "before":
                        serve_revision(page, args.before)
                    page.goto(server.url + "/")
                    page.wait_for_selector("body.ready", timeout=60_000)
                    pages[variant] = page
                for size in args.sizes:
                    ui = next(iter(pages.values())).evaluate(GENERATE_JS, size)
                    runs: dict[str, list[dict]] = {variant: [] for variant in pages}
                    for _ in range(args.repeats):
                        for variant, page in pages.items():
                            page.bring_to_front()
                            runs[variant].append(page.evaluate(MEASURE_JS, [ui, args.frames, args.edits]))
                    for variant in pages:
                        median = {}
                        for key, _ in COLUMNS:
                            values = [v for run in runs[variant]
                                      for v in (run[key] if key in EDIT_KEYS else [run[key]])]
                            median[key] = statistics.median(values)
                            if key in EDIT_KEYS:
                                median[key + "_min"] = min(values)
                        rows.append((variant, size, len(ui["links"]), median))
                        print(f"{variant}, {size} nodes: " + ", ".join(f"{k}={v:.1f}" for k, v in median.items()),
                              flush=True)
                browser.close()
                if errors:
                    raise SystemExit("page errors:\n" + "\n".join(errors))
        finally:
            server.stop()

    print(f"\nCPU: {cpu_model()}; Chromium headless, 1440x900; median of {args.repeats} repeats\n")
    header = "| web/ | nodes | links | " + " | ".join(title for _, title in COLUMNS) + " |"
    print(header)
    print("|" + "|".join("-" * (len(cell) + 2) for cell in header.strip("|").split("|")) + "|")
    for variant, size, links, median in sorted(rows, key=lambda row: (row[0] != "before", row[1])):
        cells = [f"{median[key]:.0f}" if "fps" in key else f"{median[key]:.1f} ({median[key + '_min']:.1f})"
                 if key in EDIT_KEYS else f"{median[key]:.1f}" for key, _ in COLUMNS]
        name = args.before if variant == "before" else variant
        print(f"| {name} | {size} | {links} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
