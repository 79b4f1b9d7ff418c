"""The command line: run, validate and convert workflows, list node declarations, describe the machine.

Exit codes: 0 success, 1 execution error (or interrupted), 2 invalid workflow or usage.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from tqdm import tqdm

from engine.config import COMPILE_MODES, PRECISIONS, EngineConfig, build_executor, build_registry
from engine.device_facts import NATIVE_BF16_FLAGS, read_cpu_facts
from engine.errors import describe
from engine.events import EXECUTING, PROGRESS, TERMINAL_EVENTS
from engine.execute import ValidationFailed
from engine.loading import LoadedWorkflow, load_workflow_file, parse_override, resolve_node_ref
from engine.registry import NodeRegistry
from engine.validate import ValidationResult
from engine.workflow import WorkflowFormatError

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


class ProgressBar:
    """Listener that shows one tqdm bar per executing node on stderr."""

    def __init__(self, registry_titles: dict[str, str], enabled: bool = True) -> None:
        self.titles = registry_titles
        self.enabled = enabled
        self.bar: tqdm | None = None

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if event == EXECUTING:
            self.close()
            print(f"running {self.titles.get(data['node'], data['node'])}", file=sys.stderr)
        elif event == PROGRESS:
            if data.get("text"):  # a notice (compiling a model for this CPU), not a step count
                self.close()
                print(data["text"], file=sys.stderr)
                return
            if self.bar is None:
                self.bar = tqdm(total=data["max"], file=sys.stderr, leave=False, unit="step")
            self.bar.n = data["value"]
            self.bar.refresh()
        elif event in TERMINAL_EVENTS:
            self.close()


def _config(args: argparse.Namespace) -> EngineConfig:
    config = EngineConfig()
    for name in ("models_dir", "input_dir", "output_dir", "temp_dir"):
        if getattr(args, name, None):
            setattr(config, name, Path(getattr(args, name)))
    if getattr(args, "extra_model_paths", None):
        config.extra_model_paths = Path(args.extra_model_paths)
    if getattr(args, "extensions", None):
        config.extension_dirs = [Path(p) for p in args.extensions]
    for name in ("precision", "device", "compile"):
        if getattr(args, name, None):
            config.settings[name] = getattr(args, name)
    return config


def _print_validation(result: ValidationResult, loaded: LoadedWorkflow, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.response(), indent=2))
        return
    error = result.error or {}
    print(f"invalid workflow: {error.get('message', 'validation failed')}"
          + (f" ({error['details']})" if error.get("details") else ""), file=sys.stderr)
    for node_id, entry in result.node_errors.items():
        for line in describe(node_id, entry, loaded.workflow.nodes[node_id].title):
            print(f"  {line}", file=sys.stderr)


def _load(args: argparse.Namespace, registry: NodeRegistry) -> LoadedWorkflow:
    loaded = load_workflow_file(args.workflow, registry)
    for text in getattr(args, "set", None) or []:
        ref, name, value = parse_override(text)
        loaded.workflow.set_input(resolve_node_ref(loaded.workflow, ref), name, value)
    return loaded


def _output_files(outputs: dict[str, dict[str, Any]], config: EngineConfig) -> list[Path]:
    files = []
    folders = {"output": config.output_dir, "temp": config.temp_dir, "input": config.input_dir}
    for ui in outputs.values():
        for image in ui.get("images", []):
            folder = folders.get(image.get("type", "output"), config.output_dir)
            files.append(folder / image.get("subfolder", "") / image["filename"])
    return files


def cmd_run(args: argparse.Namespace) -> int:
    config = _config(args)
    executor = build_executor(config)
    loaded = _load(args, executor.registry)
    extra_data = {"extra_pnginfo": loaded.extra_pnginfo}
    try:
        compiled = executor.compile(loaded.workflow, extra_data=extra_data)
    except ValidationFailed as exc:
        _print_validation(exc.result, loaded, as_json=False)
        return EXIT_INVALID
    titles = {nid: f"{spec.class_type} (node {nid})" for nid, spec in loaded.workflow.nodes.items()}
    progress = ProgressBar(titles, enabled=not args.quiet)
    run = executor.run(compiled, listener=progress, extra_data=extra_data)
    progress.close()
    if run.status != "success":
        what = "interrupted" if run.status == "interrupted" or run.error is None else run.error.exception_message
        node_id = run.error.node_id if run.error else None
        where = f" in {titles.get(node_id, node_id)}" if node_id else ""
        print(f"execution failed{where}: {what}", file=sys.stderr)
        return EXIT_FAILED
    for path in _output_files(run.outputs, config):
        print(path.resolve())
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    config = _config(args)
    registry = build_registry(config)
    loaded = _load(args, registry)
    from engine.validate import validate

    result = validate(loaded.workflow, registry, config.paths(), limits=config.limits)
    if result.ok and result.plan is not None:
        if args.json:
            print(json.dumps(result.response(), indent=2))
        else:
            print(f"valid: {len(result.plan.order)} node(s) to run for output(s) {', '.join(result.plan.outputs)}")
        return EXIT_OK
    _print_validation(result, loaded, args.json)
    return EXIT_INVALID


def cmd_convert(args: argparse.Namespace) -> int:
    registry = build_registry(_config(args))
    loaded = _load(args, registry)
    print(loaded.workflow.dumps())
    return EXIT_OK


def cmd_nodes(args: argparse.Namespace) -> int:
    config = _config(args)
    registry = build_registry(config)
    if args.json:
        print(json.dumps(registry.object_info(config.paths()), indent=2))
        return EXIT_OK
    for decl in sorted(registry, key=lambda d: (d.category, d.class_type)):
        inputs = ", ".join(f"{name}: {spec.type}" + ("?" if spec.optional else "")
                           for name, spec in decl.inputs.items())
        outputs = (", ".join(f"{o.name}: {o.type}" for o in decl.outputs)
                   or ("(output node)" if decl.output_node else ""))
        print(f"{decl.class_type} [{decl.category}] ({inputs}) -> {outputs}")
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    """This machine's CPU facts (from the engine, torch-free) and the node packages' runtime choice."""
    config = _config(args)
    facts = read_cpu_facts()
    report: dict[str, Any] = {
        "cpu": facts.model, "logical cpus": facts.logical_cpus, "usable cpus": facts.usable_cpus,
        "cpu flags": facts.features(), "native bf16": facts.native_bf16}
    for package in config.node_packages:  # imported by name, as the registry does: no import-time tie
        try:
            describe = importlib.import_module(f"{package}.device_report").describe_runtime
        except ModuleNotFoundError:
            continue
        report.update(describe(config.settings))
    if args.json:
        print(json.dumps(report, indent=2))
        return EXIT_OK
    for label, value in report.items():
        if label == "cpu flags":
            value = ", ".join(f"{flag} {'yes' if found else 'no'}" for flag, found in value.items())
        elif label == "native bf16":
            value = f"{'yes' if value else 'no'} ({' or '.join(NATIVE_BF16_FLAGS)})"
        print(f"{label}: {value}")
    return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--models-dir", help="folder with checkpoints/, vae/, loras/, embeddings/")
        p.add_argument("--extra-model-paths", metavar="FILE",
                       help="YAML in ComfyUI's extra_model_paths.yaml format: more model folders "
                            "(e.g. an existing ComfyUI or A1111 install)")
        p.add_argument("--input-dir", help="folder LoadImage reads from")
        p.add_argument("--output-dir", help="folder SaveImage writes to")
        p.add_argument("--temp-dir", help="folder PreviewImage writes to")
        p.add_argument("--extensions", action="append", metavar="DIR", help="node pack folder (repeatable)")
        p.add_argument("--precision", choices=PRECISIONS,
                       help="weight precision for models (default auto; a workflow's extra_data.settings overrides)")
        p.add_argument("--device", help="torch device for models, e.g. cpu, cuda, cuda:1, mps (default: best found)")
        p.add_argument("--compile", choices=COMPILE_MODES,
                       help="run the UNet through OpenVINO, traced once and cached on disk (default $SDGRAPH_COMPILE, "
                            "else auto: on CPUs without native bf16; a workflow's extra_data.settings overrides)")

    run = sub.add_parser("run", help="run a workflow (API JSON, UI JSON, or a PNG carrying one)")
    run.add_argument("workflow")
    run.add_argument("--set", action="append", metavar="NODE.INPUT=VALUE", help="override an input (repeatable)")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    common(run)
    run.set_defaults(handler=cmd_run)

    check = sub.add_parser("validate", help="validate a workflow without running it")
    check.add_argument("workflow")
    check.add_argument("--set", action="append", metavar="NODE.INPUT=VALUE")
    check.add_argument("--json", action="store_true", help="print ComfyUI's {error, node_errors} object")
    common(check)
    check.set_defaults(handler=cmd_validate)

    convert = sub.add_parser("convert", help="print a UI-format workflow (or PNG) in API format")
    convert.add_argument("workflow")
    common(convert)
    convert.set_defaults(handler=cmd_convert)

    nodes = sub.add_parser("nodes", help="list the node declarations")
    nodes.add_argument("--json", action="store_true", help="print /object_info")
    common(nodes)
    nodes.set_defaults(handler=cmd_nodes)

    doctor = sub.add_parser("doctor", help="print what this machine supports (bf16, AMX, VNNI, threads) "
                                           "and the device and precision models will use")
    doctor.add_argument("--json", action="store_true", help="print the report as a JSON object")
    doctor.add_argument("--precision", choices=PRECISIONS, help="the precision to resolve (default auto)")
    doctor.add_argument("--device", help="the torch device to describe (default: best found)")
    doctor.set_defaults(handler=cmd_doctor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.handler(args)
    except (WorkflowFormatError, ValueError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_FAILED
