"""Classify, convert and validate a corpus of real ComfyUI workflows, and print how far we get.

Reads UI-format workflow JSON from folders or wheels (ComfyUI's template packages on PyPI) and the
workflows PNGs in folders carry, keeps the SD1.x / SD2 / SDXL ones, converts each with the full registry,
and validates it with an empty placeholder file for every model it names and a small image for every
image it loads. The table says how many convert and validate, and which node types are still missing
(core or custom pack). `--packs` adds, for the workflows that use custom pack nodes, how many validate
without our rebuilt pack nodes (nodes/packs, and Use Everywhere's links) and with them.

    python tools/workflow_corpus.py /tmp/corpus/*.whl tests/fixtures/comfy_workflows [--core-docs DOCS.whl] [-v]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

if __package__ in (None, ""):  # run as a script: the repository root holds engine/ and nodes/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.paths import Paths, UnsafePathError, contained  # noqa: E402
from engine.pngmeta import read_png_metadata  # noqa: E402
from engine.registry import NodeRegistry  # noqa: E402
from engine.types import Choice  # noqa: E402
from engine.ui_format import FRONTEND_ONLY_TYPES, UIFormatError, is_ui_format, ui_to_api  # noqa: E402
from engine.ui_use_everywhere import UE_TYPES  # noqa: E402
from engine.validate import validate  # noqa: E402
from engine.workflow import Workflow  # noqa: E402

IN_SCOPE = ("SD1.x", "SD2", "SDXL")
PACKS_PACKAGE = "nodes.packs"   # our rebuilds of custom packs' nodes
# Loaders whose checkpoint holds a whole SD1.x/SD2/SDXL model; a workflow without one is another family's.
CHECKPOINT_LOADERS = frozenset({"CheckpointLoaderSimple", "CheckpointLoader", "unCLIPCheckpointLoader"})
# Nodes that only other families' workflows use (separate text encoders, video and audio latents).
OTHER_FAMILY_NODES = frozenset({"UNETLoader", "CLIPLoader", "DualCLIPLoader", "TripleCLIPLoader", "QuadrupleCLIPLoader",
                                "ImageOnlyCheckpointLoader", "EmptyLatentAudio", "EmptySD3LatentImage",
                                "EmptyHunyuanLatentVideo", "EmptyMochiLatentVideo", "EmptyLTXVLatentVideo",
                                "SVD_img2vid_Conditioning", "StableZero123_Conditioning", "SaveAudio", "SaveVideo"})
# What the templates' own `models` metadata says, lower-cased, → our family name.
FAMILY_TAGS = {"sd1.5": "SD1.x", "sd1.x": "SD1.x", "sd 1.5": "SD1.x", "sd2": "SD2", "sd2.1": "SD2", "sdxl": "SDXL"}
# Checkpoint names of other families (tried first) and of SDXL / SD2; any other checkpoint is taken for SD1.x.
OTHER_NAME = re.compile(r"flux|sd3|stable_audio|stable-audio|ace_step|zero123|hunyuan|wan2|ltx|svd|mochi|cosmos|"
                        r"hidream|lumina|sam3|sdpose|lotus|cascade|yue|aura|pixart|kolors|chroma", re.I)
SDXL_NAME = re.compile(r"sd_?xl|sdxl|xl_|_xl|-xl|pony|illustrious", re.I)
SD2_NAME = re.compile(r"v2-|sd2|sd_2|768-v|512-base|512-depth|x4-upscaler", re.I)
# Core node types that old templates save without `cnr_id` and that the core docs may lack
# (ComfyUI's nodes.py and comfy_extras); read from ComfyUI's source, not from any package.
KNOWN_CORE = frozenset({
    "CheckpointLoaderSimple", "CLIPTextEncode", "KSampler", "KSamplerAdvanced", "VAEDecode", "VAEEncode",
    "EmptyLatentImage", "SaveImage", "PreviewImage", "LoadImage", "LoadImageMask", "LoraLoader", "VAELoader",
    "ControlNetLoader", "ControlNetApply", "ControlNetApplyAdvanced", "DiffControlNetLoader", "UpscaleModelLoader",
    "ImageUpscaleWithModel", "ImageScale", "ImageScaleBy", "LatentUpscale", "LatentUpscaleBy",
    "ConditioningSetArea", "ConditioningCombine", "VAEEncodeForInpaint", "ImagePadForOutpaint",
    "InpaintModelConditioning", "GLIGENLoader", "GLIGENTextBoxApply", "CLIPVisionLoader", "CLIPVisionEncode",
    "unCLIPConditioning", "unCLIPCheckpointLoader", "StyleModelLoader", "StyleModelApply", "CLIPSetLastLayer",
    "CLIPTextEncodeSDXL", "CLIPTextEncodeSDXLRefiner", "ConditioningZeroOut", "SamplerCustom",
    "SamplerCustomAdvanced", "SDTurboScheduler", "KSamplerSelect", "ImageOnlyCheckpointLoader",
    "SVD_img2vid_Conditioning", "VideoLinearCFGGuidance", "StableZero123_Conditioning", "UNETLoader",
    "CLIPLoader", "DualCLIPLoader", "TripleCLIPLoader", "FreeU", "FreeU_V2", "ModelSamplingDiscrete",
    "ConditioningAverage", "ConditioningConcat", "LoraLoaderModelOnly", "ImageInvert", "ImageBatch",
})


@dataclass
class CorpusWorkflow:
    """One workflow file: where it came from, its UI JSON, and the template index's `models` tags if any."""

    source: str
    name: str
    ui: dict[str, Any]
    model_tags: list[str] | None = None


@dataclass
class Outcome:
    """What became of one workflow: its family, whether it converted and validated, and why not."""

    workflow: CorpusWorkflow
    family: str
    converted: bool = False
    valid: bool = False
    missing: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def in_scope(self) -> bool:
        return self.family in IN_SCOPE


# --- reading ---------------------------------------------------------------------------------------


def _index_tags(entries: dict[str, bytes]) -> dict[str, list[str]]:
    """Template name → `models` tags, from a templates folder's `index.json` (empty when it has none)."""
    tags: dict[str, list[str]] = {}
    for path, data in entries.items():
        if Path(path).name != "index.json":
            continue
        try:
            categories = json.loads(data)
        except ValueError:
            continue
        for category in categories if isinstance(categories, list) else []:
            for template in category.get("templates", []) if isinstance(category, dict) else []:
                if isinstance(template, dict) and isinstance(template.get("models"), list):
                    tags[str(template.get("name"))] = [str(m) for m in template["models"]]
    return tags


def _entries(source: Path) -> dict[str, bytes]:
    """Every `.json` file in a wheel (or any zip), or `.json` and `.png` file under a folder, by path."""
    if source.is_dir():
        return {p.relative_to(source).as_posix(): p.read_bytes() for p in sorted(source.rglob("*"))
                if p.suffix.lower() in (".json", ".png") and p.is_file()}
    with zipfile.ZipFile(source) as archive:
        return {n: archive.read(n) for n in sorted(archive.namelist()) if n.endswith(".json")}


def read_corpus(sources: Iterable[Path]) -> list[CorpusWorkflow]:
    """The UI-format workflows in `sources` (folders or wheels); index files and API-format JSON are skipped."""
    found = []
    for source in sources:
        entries = _entries(Path(source))
        tags = _index_tags(entries)
        for path, data in entries.items():
            try:
                ui = _png_workflow(data) if path.lower().endswith(".png") else json.loads(data)
            except ValueError:
                continue
            if is_ui_format(ui):
                name = Path(path).stem
                found.append(CorpusWorkflow(Path(source).name, name, ui, tags.get(name)))
    return found


def _png_workflow(data: bytes) -> Any:
    """The UI workflow a PNG carries (None when it carries none)."""
    try:
        return read_png_metadata(data).workflow
    except Exception:  # noqa: BLE001 - any unreadable PNG just holds no workflow for the corpus
        return None


def ui_nodes(ui: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The workflow's nodes and those inside its subgraph definitions."""
    yield from (n for n in ui.get("nodes", []) if isinstance(n, dict))
    for subgraph in (ui.get("definitions") or {}).get("subgraphs", []) or []:
        yield from (n for n in subgraph.get("nodes", []) if isinstance(n, dict))


def ui_node_types(ui: dict[str, Any]) -> set[str]:
    """Node types the workflow uses, without subgraph instances and front-end-only nodes."""
    subgraph_ids = {s.get("id") for s in (ui.get("definitions") or {}).get("subgraphs", []) or []}
    return {str(n.get("type")) for n in ui_nodes(ui)} - subgraph_ids - FRONTEND_ONLY_TYPES


def everywhere_types(ui: dict[str, Any]) -> set[str]:
    """The Use Everywhere node types the workflow uses (front-end-only, so not among `ui_node_types`)."""
    return {str(n.get("type")) for n in ui_nodes(ui)} & UE_TYPES


# --- classifying -----------------------------------------------------------------------------------


def checkpoint_names(ui: dict[str, Any]) -> list[str]:
    """The checkpoint file names the workflow's SD checkpoint loaders ask for (their first string widget)."""
    names = []
    for n in ui_nodes(ui):
        values = n.get("widgets_values")
        if n.get("type") in CHECKPOINT_LOADERS and isinstance(values, list):
            names += [v for v in values if isinstance(v, str) and v.lower().endswith((".safetensors", ".ckpt"))][:1]
    return names


def model_family(workflow: CorpusWorkflow) -> str:
    """SD1.x, SD2 or SDXL, or `other: WHY` (the template's own tags, or the checkpoint names, decide)."""
    names = checkpoint_names(workflow.ui)
    if not names:
        return "other: no SD checkpoint loader"
    foreign = sorted(ui_node_types(workflow.ui) & OTHER_FAMILY_NODES)
    if foreign:
        return f"other: uses {foreign[0]}"
    if workflow.model_tags is not None:
        families = {FAMILY_TAGS.get(tag.lower()) for tag in workflow.model_tags} - {None}
        others = [t for t in workflow.model_tags if t.lower() not in FAMILY_TAGS and t.lower() not in ("stability",)]
        if others or not families:
            return f"other: {', '.join(others or workflow.model_tags)}"
        return "SDXL" if "SDXL" in families else sorted(families)[0]  # type: ignore[type-var]
    if any(OTHER_NAME.search(n) for n in names):
        return f"other: {next(n for n in names if OTHER_NAME.search(n))}"
    if any(SDXL_NAME.search(n) for n in names):
        return "SDXL"
    return "SD2" if any(SD2_NAME.search(n) for n in names) else "SD1.x"


def core_docs_types(wheel: Path) -> set[str]:
    """Node types documented in a `comfyui-embedded-docs` wheel (one folder per core node)."""
    prefix = "comfyui_embedded_docs/docs/"
    with zipfile.ZipFile(wheel) as archive:
        return {n[len(prefix):].split("/")[0] for n in archive.namelist() if n.startswith(prefix) and n.count("/") >= 3}


def node_origins(corpus: Iterable[CorpusWorkflow], registry: NodeRegistry,
                 docs: Iterable[str] = ()) -> dict[str, str]:
    """Node type → "core", "custom" or "unknown": `cnr_id` says so where the editor saved it;
    else our registry (we build core nodes only), the core docs and `KNOWN_CORE`."""
    corpus, docs = list(corpus), set(docs)
    saved: dict[str, str] = {}
    for workflow in corpus:
        for n in ui_nodes(workflow.ui):
            props = n.get("properties") if isinstance(n.get("properties"), dict) else {}
            pack = props.get("cnr_id") or props.get("aux_id")
            if pack:
                kind = "core" if pack == "comfy-core" else "custom"
                saved[str(n.get("type"))] = "core" if saved.get(str(n.get("type"))) == "core" else kind
    types = {t for w in corpus for t in ui_node_types(w.ui)}
    return {t: saved.get(t) or ("core" if t in registry or t in docs or t in KNOWN_CORE else "unknown")
            for t in types}


# --- converting and validating ---------------------------------------------------------------------


def implicit_model_files() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Node type → (model kind, file names) for nodes that load fixed files no input names."""
    from nodes.packs.nn_latent_upscale import KIND, RESIZER_FILES

    return {"NNLatentUpscale": (KIND, tuple(RESIZER_FILES.values()))}


def write_placeholders(workflow: Workflow, registry: NodeRegistry, paths: Paths) -> None:
    """An empty file for every model the workflow names (in the folder its loader reads) and a
    64×64 PNG for every image it loads, so that only the graph itself is validated."""
    from PIL import Image

    implicit = implicit_model_files()
    for spec in workflow.nodes.values():
        decl = registry.get(spec.class_type)
        if decl is None:
            continue
        constants = spec.constants()
        kind, files = implicit.get(spec.class_type, ("", ()))
        for name in files:
            _touch(paths.models_dir / kind, name)
        for name, kind in decl.model_inputs.items():
            if isinstance(constants.get(name), str) and constants[name]:
                _touch(paths.models_dir / kind, constants[name])
        for name, input_spec in decl.inputs.items():
            if isinstance(input_spec, Choice) and input_spec.image_upload and isinstance(constants.get(name), str):
                target = _touch(paths.input_dir, constants[name])
                if target is not None and target.stat().st_size == 0:
                    Image.new("RGBA", (64, 64), (128, 96, 64, 255)).save(target, format="PNG")


def _touch(folder: Path, name: str) -> Path | None:
    """`folder/name` created empty unless present; None for a name that would leave the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        path = contained(folder, name.replace("\\", "/"))
    except UnsafePathError:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(exist_ok=True)
    return path


def first_error(response: dict[str, Any]) -> str:
    """The first reason validation gave, in a line."""
    for node_id, errors in response.get("node_errors", {}).items():
        for error in errors.get("errors", []):
            return f"node {node_id} ({errors.get('class_type')}): {error.get('message')}: {error.get('details')}"
    error = response.get("error") or {}
    return f"{error.get('message')}: {error.get('details')}"


def without_packs(registry: NodeRegistry) -> NodeRegistry:
    """The registry less our rebuilds of custom packs' nodes: the engine as it was before them."""
    core = NodeRegistry(decl.cls for decl in registry if not decl.cls.__module__.startswith(PACKS_PACKAGE + "."))
    core.missing_explainers = list(registry.missing_explainers)
    return core


def check(workflow: CorpusWorkflow, registry: NodeRegistry, work_dir: Path, use_everywhere: bool = True) -> Outcome:
    """Classify, convert, and (for an in-scope workflow) validate with placeholder files under `work_dir`.
    Without `use_everywhere`, a workflow with Use Everywhere nodes fails as it did before they were resolved."""
    outcome = Outcome(workflow, model_family(workflow))
    everywhere = sorted(everywhere_types(workflow.ui))
    if everywhere and not use_everywhere:
        outcome.missing, outcome.error = everywhere, "Use Everywhere's broadcasts are not resolved"
        return outcome
    try:
        converted = ui_to_api(workflow.ui, registry)
    except (UIFormatError, ValueError, KeyError, TypeError) as exc:
        outcome.error = f"conversion: {exc}"
        outcome.missing = sorted(t for t in ui_node_types(workflow.ui) if t not in registry)
        return outcome
    outcome.converted = True
    outcome.missing = sorted({s.class_type for s in converted.nodes.values() if s.class_type not in registry})
    if not outcome.in_scope:
        return outcome
    paths = Paths(work_dir / "models", work_dir / "input", work_dir / "output", work_dir / "temp")
    write_placeholders(converted, registry, paths)
    result = validate(converted, registry, paths)
    outcome.valid = result.ok
    outcome.error = "" if result.ok else first_error(result.response())
    return outcome


def check_corpus(corpus: list[CorpusWorkflow], registry: NodeRegistry, use_everywhere: bool = True) -> list[Outcome]:
    with tempfile.TemporaryDirectory(prefix="workflow-corpus-") as tmp:
        return [check(w, registry, Path(tmp) / f"{i}", use_everywhere) for i, w in enumerate(corpus)]


# --- the table -------------------------------------------------------------------------------------


def table(outcomes: list[Outcome], origins: dict[str, str], verbose: bool = False) -> str:
    """Totals, per family, and the missing node types of the in-scope workflows with their counts."""
    scoped = [o for o in outcomes if o.in_scope]
    lines = [f"{'':24}{'workflows':>10}{'converted':>10}{'valid':>8}",
             f"{'all':24}{len(outcomes):>10}{sum(o.converted for o in outcomes):>10}{'':>8}"]
    for family in IN_SCOPE:
        group = [o for o in scoped if o.family == family]
        lines.append(f"{family:24}{len(group):>10}{sum(o.converted for o in group):>10}"
                     f"{sum(o.valid for o in group):>8}")
    lines.append(f"{'in scope':24}{len(scoped):>10}{sum(o.converted for o in scoped):>10}"
                 f"{sum(o.valid for o in scoped):>8}")
    core_only = [o for o in scoped if all(origins.get(t) == "core" for t in ui_node_types(o.workflow.ui))]
    lines.append(f"{'in scope, core nodes only':24}{len(core_only):>10}{sum(o.converted for o in core_only):>10}"
                 f"{sum(o.valid for o in core_only):>8}")
    missing = Counter(t for o in scoped for t in o.missing)
    lines.append("")
    lines.append("missing node types in in-scope workflows (workflows using each):")
    for origin in ("core", "custom", "unknown"):
        listed = [f"{t} ({n})" for t, n in sorted(missing.items(), key=lambda i: (-i[1], i[0]))
                  if origins.get(t, "unknown") == origin]
        lines.append(f"  {origin}: {', '.join(listed) if listed else '-'}")
    other = Counter(t for o in outcomes if not o.in_scope for t in o.missing)
    lines.append(f"out of scope: {len(outcomes) - len(scoped)} workflows, {len(other)} node types we lack")
    if verbose:
        lines.append("")
        for o in sorted(scoped, key=lambda o: (o.workflow.source, o.workflow.name)):
            state = "valid" if o.valid else ("converted" if o.converted else "not converted")
            lines.append(f"  {o.workflow.source}/{o.workflow.name} [{o.family}] {state}"
                         + (f": {o.error}" if o.error else ""))
    return "\n".join(lines)


def custom_types(ui: dict[str, Any], origins: dict[str, str]) -> set[str]:
    """The workflow's node types that are not ComfyUI core (custom packs' and unknown ones, Use Everywhere's)."""
    return {t for t in ui_node_types(ui) if origins.get(t, "unknown") != "core"} | everywhere_types(ui)


def pack_table(before: list[Outcome], after: list[Outcome], origins: dict[str, str]) -> str:
    """For the in-scope workflows that use custom pack nodes: how many validate without our pack nodes and
    with them, per family, and the custom types still missing with the number of workflows using each."""
    pairs = [(b, a) for b, a in zip(before, after) if a.in_scope and custom_types(a.workflow.ui, origins)]
    lines = [f"{'workflows using custom nodes':30}{'workflows':>10}{'valid before':>14}{'valid after':>13}"]
    for family in (*IN_SCOPE, None):
        group = [(b, a) for b, a in pairs if family is None or a.family == family]
        lines.append(f"{family or 'all in scope':30}{len(group):>10}{sum(b.valid for b, _ in group):>14}"
                     f"{sum(a.valid for _, a in group):>13}")
    missing = Counter(t for _, a in pairs for t in a.missing if origins.get(t, "unknown") != "core")
    lines += ["", "custom node types still missing (workflows using each):"]
    lines += [f"  {t} ({n})" for t, n in sorted(missing.items(), key=lambda i: (-i[1], i[0]))] or ["  -"]
    blocked = Counter(a.error.split(":")[0] for _, a in pairs if a.converted and not a.valid and not a.missing)
    if blocked:
        lines += ["", "invalid for other reasons (first error's node):"]
        lines += [f"  {reason} ({n})" for reason, n in blocked.most_common()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", type=Path, help="folders or wheels holding workflow JSON")
    parser.add_argument("--core-docs", type=Path, help="a comfyui-embedded-docs wheel: its node list marks core types")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per in-scope workflow")
    parser.add_argument("--packs", action="store_true",
                        help="also: workflows using custom nodes, valid without and with our pack nodes")
    args = parser.parse_args(argv)

    from engine.config import EngineConfig, build_registry

    registry = build_registry(EngineConfig(extension_dirs=[]))
    corpus = read_corpus(args.sources)
    docs = core_docs_types(args.core_docs) if args.core_docs else set()
    # Origins from the core registry: our rebuilt pack nodes are still custom nodes.
    origins = node_origins(corpus, without_packs(registry), docs)
    outcomes = check_corpus(corpus, registry)
    print(table(outcomes, origins, args.verbose))
    if args.packs:
        before = check_corpus(corpus, without_packs(registry), use_everywhere=False)
        print()
        print(pack_table(before, outcomes, origins))
    return 0


if __name__ == "__main__":
    sys.exit(main())
