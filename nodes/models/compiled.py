"""The UNet compiled for this CPU by OpenVINO, used while sampling when the `compile` run setting asks for it.

`compile` is off, on or auto (CLI and server `--compile`, a workflow's `extra_data.settings`, else
`$SDGRAPH_COMPILE`, else auto); auto compiles only on CPU kinds where it was measured faster than eager
(bench/compiled.py, bench/RESULTS.md) and where memory allows; it samples eager while a background thread
compiles (putting the weights into the graph copies them: seconds, and far more where fresh memory is slow),
then switches, so its start-up is eager's; it starts that compile for a run of at least
AUTO_BACKGROUND_MIN_STEPS steps, or when the model samples again in this process (a short one-shot run would
pay the compile and never use it); `on` waits for the compile. The path is exact: fp32 in, fp32 out, within 45
dB PSNR of eager. The traced graph (OpenVINO IR, without weights) is kept on disk under the user's cache
folder (`compile_cache`), keyed by the UNet's architecture, the class of input shapes it serves
(`shape_bucket`) and the runtime versions; the weights as they are when sampling (patches applied) are put
into it at each compile (`graph_weights`), so another checkpoint or LoRA costs seconds, never a new trace, and
never runs with stale weights. A call the compiled graph cannot express (ControlNet residuals, IP-Adapter or
GLIGEN attention, hooks, extra inputs) runs eager. At `precision=int8` the graph, holding the model's weights,
is quantized by NNCF (nodes.models.quantized_graph) and cached per weights digest; a call it cannot express
runs on the eager int8 layers (nodes.models.quantize).
"""

from __future__ import annotations

import importlib.util
import math
import os
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import torch

from engine.config import COMPILE_MODES
from engine.context import RunContext
from engine.device_facts import read_memory
from engine.events import PROGRESS
from nodes.models.compile_cache import CompileCache, cache_key, user_cache_dir
from nodes.models.graph_weights import (
    GraphWeights,
    locate,
    module_tensors,
    put_weights,
    stand_in,
    structure_of,
    weightless,
)
from nodes.models.handles import ModelHandle
from nodes.models.module_memory import ModuleMemory
from nodes.models.quantize import int8_forwards_lifted
from nodes.models.quantized_graph import (
    RECIPE_VERSION,
    calibration_call,
    nncf_available,
    nncf_version,
    quantized,
    spread,
    weights_digest,
)

IR_NAME = "unet.xml"
TRACED_NAME = "traced.xml"  # the converter's graph with its stand-in weights, while a trace is written
# 2: traced from stand-in weights, the real ones put in at compile time; 3: verified; 4: kept without weights
FORMAT_VERSION = 4
# CPU kinds where the compiled fp32 UNet was measured faster than eager, so that `auto` compiles there:
# CPUs without native bf16, where auto's precision is fp32 (bench/RESULTS.md, "Compiled UNet"). With native
# bf16, bf16 eager is faster still and stays the default; `--compile on` opts in anywhere.
AUTO_COMPILES_ON: frozenset[str] = frozenset({"fp32"})
# What `auto` wants free beyond the loaded UNet, in UNets: a first trace holds a stand-in copy and the
# converter's graph, and the compiled model keeps a copy of the weights in its own layout.
AUTO_MEMORY_UNETS = 3
COMPILE_DEFAULT_ENV = "SDGRAPH_COMPILE"  # the default of the `compile` setting where a run does not set it
VERIFY_PSNR_DB = 60  # a new graph's output against eager's, on the trace's inputs (OpenVINO fp32: ~120 dB)
MEMORY_ENTRIES = 4  # compiled (weights, shape) pairs kept in memory; each holds a copy of the weights
# The fewest steps for which auto's first run of a model starts a background compile. Its compile competes
# with the eager steps beside it and a process that ends first waits for it: on this project's VM a one-shot
# 256 px run of 2 or 8 steps took 1.6–1.8× eager's time with it, a 512 px run of 20 steps 0.84× and 1.00×
# (bench/RESULTS.md); where fresh memory is cheap the compile takes seconds and pays within a few steps.
AUTO_BACKGROUND_MIN_STEPS = 10


def openvino_available() -> bool:
    return importlib.util.find_spec("openvino") is not None


def compile_mode(settings: Mapping[str, Any]) -> str:
    mode = settings.get("compile") or os.environ.get(COMPILE_DEFAULT_ENV) or "auto"
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile must be one of {', '.join(COMPILE_MODES)}, got {mode!r}")
    return mode


def compile_wanted(settings: Mapping[str, Any], model: ModelHandle, cpu_kind: str = "") -> bool:
    """Whether this model samples compiled: an fp32 UNet on the CPU, asked for (on) or measured faster
    (auto: fp32 where bf16 is not native; int8, quantized by NNCF, on every CPU)."""
    mode = compile_mode(settings)
    if mode == "off":
        return False
    int8 = getattr(model, "int8", None) is not None
    param = next(model.unet.parameters())
    if param.device.type != "cpu" or param.dtype != torch.float32:
        return False
    if not openvino_available() or (int8 and not nncf_available()):
        if mode == "on":
            raise ValueError("compile=on needs OpenVINO" + (" and NNCF at precision int8: pip install openvino nncf"
                                                            if int8 else ": pip install openvino"))
        return False
    if mode == "on":
        return True
    if not int8 and cpu_kind not in AUTO_COMPILES_ON:
        return False
    fits = _AUTO_FITS.get(model.unet)
    if fits is None:  # decided once per loaded UNet: its compiled copy, once made, takes from what is free
        needed = AUTO_MEMORY_UNETS * sum(t.numel() * t.element_size() for t in model.unet.parameters())
        fits = _AUTO_FITS[model.unet] = needed <= available_memory_bytes()
    return fits


_AUTO_FITS: weakref.WeakKeyDictionary[torch.nn.Module, bool] = weakref.WeakKeyDictionary()


def available_memory_bytes() -> int:
    """What the OS says is available now; 0 where it cannot tell (auto then leaves the model eager)."""
    return read_memory()[1]


def auto_compile_choice() -> str:
    """What `compile=auto` does on this machine, in words (for `python -m engine doctor`)."""
    if not openvino_available():
        return "off: OpenVINO is not installed (pip install openvino)"
    int8 = ("; at precision int8 the graph quantized by NNCF, once per model" if nncf_available()
            else "; at precision int8 eager: NNCF is not installed (pip install nncf)")
    if cpu_kind() not in AUTO_COMPILES_ON:
        return "off: bf16 eager is faster on this CPU" + int8
    return ("on: the fp32 UNet through OpenVINO, traced once per architecture and cached, compiled in the "
            "background while the first steps sample eager (where memory allows)" + int8)


def runtime_versions() -> dict[str, str]:
    import diffusers
    import openvino

    return {"torch": torch.__version__, "openvino": openvino.__version__, "diffusers": diffusers.__version__,
            "format": str(FORMAT_VERSION)}


def shape_bucket(unet: torch.nn.Module, example: tuple[torch.Tensor, ...]) -> Any:
    """The input shapes a traced graph serves. Its inputs keep dynamic shapes (reshaped to the call's at
    compile time), but the trace bakes in diffusers' branch for latents whose sides are not multiples of
    the UNet's total upsampling (explicit upsample sizes): those get a graph of their own per shape; every
    aligned latent (any multiple-of-64 image at 8x), batch and prompt length shares one."""
    factor = 2 ** int(getattr(unet, "num_upsamplers", 0))
    height, width = example[0].shape[-2:]
    if height % factor == 0 and width % factor == 0:
        return {"aligned": factor}
    return [list(t.shape) for t in example]


def _structure(unet: torch.nn.Module) -> tuple:
    """What a frozen graph would miss: hooks on any submodule and the attention processors' types."""
    return tuple((name, bool(m._forward_hooks or m._forward_pre_hooks), type(getattr(m, "processor", None)))
                 for name, m in unet.named_modules())


class _SampleOnly(torch.nn.Module):
    """The UNet's plain call returning its sample tensor (what the converter traces)."""

    def __init__(self, unet: torch.nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, encoder_hidden_states):
        # The class's forward: the instance's, while sampling, is the dispatcher that asked for this trace.
        return type(self.unet).forward(self.unet, sample, timestep, encoder_hidden_states=encoder_hidden_states).sample


@dataclass
class CompiledUnets:
    """Compiled UNets of this process: in memory by (UNet, patches, shapes); on disk, one traced graph per
    architecture, input shapes and runtime versions, into which each set of weights is put when compiling.
    `compilations` counts traces from torch (the slow, one-time step), `quantizations` int8 graphs made by
    NNCF (once per set of weights) and `loads` graphs read from disk. A compiled call holds a copy of its
    UNet's weights, so it goes when its UNet does (the model unloaded or evicted), as does a pending compile."""

    cache: CompileCache
    compilations: int = 0
    quantizations: int = 0
    loads: int = 0
    _memory: ModuleMemory = field(default_factory=lambda: ModuleMemory(MEMORY_ENTRIES))  # compiled calls
    _digests: ModuleMemory = field(default_factory=lambda: ModuleMemory(MEMORY_ENTRIES))  # weights digests
    _pending: ModuleMemory = field(default_factory=ModuleMemory)  # background compiles (Futures)
    _sampled: ModuleMemory = field(default_factory=lambda: ModuleMemory(4 * MEMORY_ENTRIES))  # (UNet, patches) seen
    _background: ThreadPoolExecutor | None = None

    def traced_graph(self, unet: torch.nn.Module, example: tuple,
                     notify: Callable[[str], None]) -> tuple[Path, GraphWeights]:
        """The IR file for this architecture and these shapes, and where its weights are: from the disk
        cache, or traced now (from a stand-in copy of the module) and stored there."""
        key = cache_key({"structure": structure_of(unet), "shapes": shape_bucket(unet, example),
                         **runtime_versions()})
        folder = self.cache.entry(key)
        if folder is not None:
            self.loads += 1
            return folder / IR_NAME, GraphWeights.load(folder)

        def write(target: Path) -> None:
            import openvino as ov

            notify("compiling UNet for this CPU, one-time, a few minutes")
            traced = stand_in(unet)
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the tracer's notes on Python branches, expected here
                converted = ov.convert_model(_SampleOnly(traced), example_input=example)
            ov.save_model(converted, str(target / TRACED_NAME), compress_to_fp16=False)
            del converted
            graph = _read(target / TRACED_NAME)
            weights = locate(graph, traced)
            del traced
            weightless(graph, weights)  # kept as structure alone; the weights go in when compiling
            ov.save_model(graph, str(target / IR_NAME), compress_to_fp16=False)
            del graph
            for part in (TRACED_NAME, Path(TRACED_NAME).with_suffix(".bin").name):
                (target / part).unlink()
            if weights.usable:
                weights = replace(weights, mismatch=_differs_from_eager(target / IR_NAME, weights, unet, example))
            weights.save(target)
            self.compilations += 1

        folder = self.cache.store(key, write)
        return folder / IR_NAME, GraphWeights.load(folder)

    def int8_key(self, unet: torch.nn.Module, patches: tuple, inputs: tuple[torch.Tensor, ...]) -> str:
        """The disk key of the int8 graph for the module's current weights and these inputs' shape class."""
        memo = _owner(unet, patches)
        found, digest = self._digests.get(memo, unet, patches)
        if not found:
            digest = weights_digest(unet)
            self._digests.put(memo, unet, patches, digest)
        return cache_key({"structure": structure_of(unet), "shapes": shape_bucket(unet, inputs),
                          **runtime_versions(), "nncf": nncf_version(), "recipe": RECIPE_VERSION, "weights": digest})

    def quantize(self, unet: torch.nn.Module, patches: tuple, calls: list, example: tuple[torch.Tensor, ...],
                 notify: Callable[[str], None]) -> Path | None:
        """Quantize the traced fp32 graph, holding the module's current weights, on the calibration `calls`
        (nodes.models.quantized_graph.calibration_call) and store it on disk; None where the fp32 graph is
        not usable (the model then keeps the eager int8 layers)."""
        with int8_forwards_lifted(unet):  # the trace and its check against eager are of the fp32 module
            ir, weights = self.traced_graph(unet, example, notify)
        if not weights.usable:
            warnings.warn("the UNet's graph cannot take this model's weights: int8 stays on the eager layers",
                          stacklevel=2)
            return None

        def write(target: Path) -> None:
            import openvino as ov

            notify("quantizing UNet to int8 for this model, one-time, a few minutes (later runs use it)")
            graph = _read(ir)
            put_weights(graph, weights, module_tensors(unet))
            ov.save_model(quantized(graph, spread(calls)), str(target / IR_NAME), compress_to_fp16=False)
            self.quantizations += 1

        folder = self.cache.store(self.int8_key(unet, patches, example), write)
        self._memory.take(lambda key, _: key[0] == id(unet) and key[3])  # found no int8 graph before
        return folder / IR_NAME

    def compiled(self, unet: torch.nn.Module, patches: tuple, inputs: tuple[torch.Tensor, ...],
                 notify: Callable[[str], None], int8: bool = False) -> Any:
        """The compiled call for these inputs' shapes with the module's current weights (patches applied),
        quantized when `int8`; None where the traced graph could not take them (the caller runs eager)."""
        key = (*_owner(unet, patches), tuple(tuple(t.shape) for t in inputs), int8)
        found, compiled = self._memory.get(key, unet, patches)
        if found:
            return compiled
        compiled = self._int8_graph(unet, patches, inputs) if int8 else self._fp32_graph(unet, inputs, notify)
        self._memory.put(key, unet, patches, compiled)
        return compiled

    def _int8_graph(self, unet: torch.nn.Module, patches: tuple, inputs: tuple[torch.Tensor, ...]) -> Any:
        """The int8 graph made earlier for these weights, compiled; None: this run calibrates for one."""
        folder = self.cache.entry(self.int8_key(unet, patches, inputs))
        if folder is None:
            return None
        self.loads += 1
        return _compile_graph(_read(folder / IR_NAME), tuple(tuple(t.shape) for t in inputs))

    def _fp32_graph(self, unet: torch.nn.Module, inputs: tuple[torch.Tensor, ...],
                    notify: Callable[[str], None]) -> Any:
        """The traced graph with the module's current weights put in, compiled; None where it cannot be used."""
        usable = self._usable_graph(unet, inputs, notify)
        shapes = tuple(tuple(t.shape) for t in inputs)
        return None if usable is None else _compile(*usable, module_tensors(unet), shapes)

    def _usable_graph(self, unet: torch.nn.Module, inputs: tuple[torch.Tensor, ...],
                      notify: Callable[[str], None]) -> tuple[Path, GraphWeights] | None:
        """The traced graph and where its weights go; None, with a warning, where it cannot be used."""
        ir, weights = self.traced_graph(unet, inputs, notify)
        if weights.unplaced:
            warnings.warn(f"the compiled UNet would keep stand-in values for {', '.join(weights.unplaced[:3])}: "
                          "sampling eager", stacklevel=4)
        elif weights.mismatch is not None:
            warnings.warn(f"the compiled UNet was not exact when traced ({weights.mismatch}): sampling eager",
                          stacklevel=4)
        return (ir, weights) if weights.usable else None

    def sampled_before(self, unet: torch.nn.Module, patches: tuple) -> bool:
        """Whether this module with these patches sampled before in this process; it counts as having now."""
        key = _owner(unet, patches)
        seen = self._sampled.get(key, unet, patches)[0]
        self._sampled.put(key, unet, patches, True)
        return seen

    def compiled_soon(self, unet: torch.nn.Module, patches: tuple, inputs: tuple[torch.Tensor, ...],
                      notify: Callable[[str], None], start: bool = True) -> Any:
        """`compiled` at fp32 without the wait: the call if it is in memory, else None (the caller runs eager)
        while a background thread compiles it (if `start`), one at a time. A graph not yet traced is traced
        first, here (once per architecture). The weights compiled are those the module holds now (a snapshot)."""
        shapes = tuple(tuple(t.shape) for t in inputs)
        key = (*_owner(unet, patches), shapes, False)
        self._collect()
        found, compiled = self._memory.get(key, unet, patches)
        if found:
            return compiled
        if not start or len(self._pending):  # not wanted now, or a compile is under way: eager meanwhile
            return None
        usable = self._usable_graph(unet, inputs, notify)
        if usable is None:
            self._memory.put(key, unet, patches, None)
            return None
        notify("compiling UNet for this CPU in the background; sampling eager meanwhile")
        if self._background is None:
            self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="compile-unet")
        # detached: the tensors the parameters hold now, which a patch taken off later rebinds, not changes
        snapshot = {name: tensor.detach() for name, tensor in module_tensors(unet).items()}
        self._pending.put(key, unet, patches, self._background.submit(_compile, *usable, snapshot, shapes))
        return None

    def _collect(self) -> None:
        """Move finished background compiles into memory (a failed one, warned about, as None: eager)."""
        for key, unet, patches, future in self._pending.take(lambda _, future: future.done()):
            try:
                compiled = future.result()
            except Exception as error:
                warnings.warn(f"compiling the UNet failed ({type(error).__name__}: {error}): sampling eager",
                              stacklevel=4)
                compiled = None
            if unet is not None:
                self._memory.put(key, unet, patches, compiled)

    def wait_for_background(self, timeout: float | None = None) -> None:
        """Wait until the background compile, if any, is done (for callers that want it ready: tests, benches)."""
        for future in self._pending.values():
            future.exception(timeout)
        self._collect()

    def held(self) -> int:
        """How many compiled calls (or compiles under way) this process holds in memory: each goes with its
        UNet (nodes.models.module_memory)."""
        return len(self._memory) + len(self._pending)

    def clear_memory(self) -> None:
        """Forget every compiled call and pending compile (a running compile finishes, unused)."""
        self._memory.clear()
        self._pending.clear()


def _owner(unet: torch.nn.Module, patches: tuple) -> tuple[int, tuple[int, ...]]:
    """The start of an in-memory key: which module with which patches (ModuleMemory checks both are still so)."""
    return id(unet), tuple(id(p) for p in patches)


def _read(ir: Path) -> Any:
    import openvino as ov

    return ov.Core().read_model(str(ir))


def _compile(ir: Path, weights: GraphWeights, tensors: Mapping[str, torch.Tensor], shapes: tuple) -> Any:
    """The graph with these weights (`module_tensors` of the module), compiled for these input shapes."""
    model = _read(ir)
    put_weights(model, weights, tensors)
    return _compile_graph(model, shapes)


def _compile_graph(model: Any, shapes: tuple) -> Any:
    """`model` compiled for the CPU at these input shapes, computing in fp32 where it is not int8."""
    import openvino as ov

    model.reshape({i: ov.PartialShape(list(shape)) for i, shape in enumerate(shapes)})
    return ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})


def _differs_from_eager(ir: Path, weights: GraphWeights, unet: torch.nn.Module, example: tuple) -> str | None:
    """Why the new graph, given the module's real weights, does not compute what the module does on the
    trace's inputs; None when it does (within VERIFY_PSNR_DB). Run once per trace: a constant derived from
    weights that no byte match finds would otherwise keep a stand-in value unseen."""
    compiled = _compile(ir, weights, module_tensors(unet), tuple(tuple(t.shape) for t in example))
    output = torch.from_numpy(compiled([t.numpy() for t in example])[0].copy())
    with torch.no_grad():
        reference = _SampleOnly(unet)(*example)
    mse = float(((output - reference) ** 2).mean())
    psnr = math.inf if mse == 0 else 10 * math.log10(max(float(reference.abs().max()), 1e-12) ** 2 / mse)
    return None if psnr >= VERIFY_PSNR_DB else f"{psnr:.1f} dB PSNR against eager, below {VERIFY_PSNR_DB}"


_PROCESS: dict[Path, CompiledUnets] = {}


def compiled_unets(root: Path | None = None) -> CompiledUnets:
    """This process's compiled UNets for a cache folder (default: the user's, `compiled-unet` in it)."""
    root = root or user_cache_dir() / "compiled-unet"
    if root not in _PROCESS:
        _PROCESS[root] = CompiledUnets(CompileCache(root))
    return _PROCESS[root]


def cpu_kind() -> str:
    """The row of the measured table this CPU falls in."""
    from nodes.models.runtime import cpu_has_native_bf16

    return "native-bf16" if cpu_has_native_bf16() else "fp32"


class _Calibration:
    """The UNet calls a calibrating int8 run keeps (nodes.models.quantized_graph.calibration_call), all of the
    shape class of its first, and the latest of them as the trace's example."""

    def __init__(self, unet: torch.nn.Module):
        self.unet = unet
        self.calls: list = []
        self.bucket: Any = None
        self.example: tuple[torch.Tensor, ...] = ()

    def keep(self, inputs: tuple[torch.Tensor, ...]) -> None:
        bucket = shape_bucket(self.unet, inputs)
        if self.calls and bucket != self.bucket:
            return
        self.bucket, self.example = bucket, inputs
        self.calls.append(calibration_call(inputs, bucket.get("aligned") if isinstance(bucket, dict) else None))


@contextmanager
def compiled_unet_used(ctx: RunContext, model: ModelHandle, unets: CompiledUnets | None = None,
                       steps: int | None = None) -> Iterator[None]:
    """Inside the block (entered with the model's patches applied), plain calls of `model.unet` run compiled
    when the `compile` setting wants it; any other call runs eager. The module is as before afterwards.
    `steps`: how many sampling steps the block makes (None: unknown, as many as a compile needs to pay)."""
    if not compile_wanted(ctx.settings, model, cpu_kind()) or model.hooks:
        yield
        return
    unet = model.unet
    if unets is None:
        folder = ctx.settings.get("compile_cache_dir")
        unets = compiled_unets(Path(folder) if folder else None)
    own_forward = unet.__dict__.get("forward")
    eager_forward = unet.forward
    plain = _structure(unet)
    patches = tuple(p for p in model.patches if getattr(p, "part", "unet") == "unet")

    def notify(text: str) -> None:
        ctx.emit(PROGRESS, {"value": 0, "max": 1, "node": ctx.node_id, "prompt_id": ctx.prompt_id, "text": text})

    int8 = model.int8 is not None
    # auto at fp32 samples eager while its compile runs in the background: the start-up stays eager's
    soon = not int8 and compile_mode(ctx.settings) == "auto"
    # ... started where it pays: a run long enough, or a model that samples again in this process
    start = soon and (unets.sampled_before(unet, patches) or steps is None or steps >= AUTO_BACKGROUND_MIN_STEPS)
    calibration = _Calibration(unet)  # int8 with no graph for these weights yet: quantize one after the run

    def forward(sample, timestep, encoder_hidden_states=None, *args, **kwargs):
        extra = {k: v for k, v in kwargs.items() if v is not None and k != "return_dict"}
        if args or extra or encoder_hidden_states is None or _structure(unet) != plain:
            return eager_forward(sample, timestep, encoder_hidden_states, *args, **kwargs)
        from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

        inputs = (sample.float(), torch.as_tensor(timestep, dtype=torch.float32).reshape(-1).expand(sample.shape[0]),
                  encoder_hidden_states.float())
        with torch.inference_mode(False):  # the converter traces: it needs ordinary tensors
            inputs = tuple(t.clone() for t in inputs)
            call = (unets.compiled_soon(unet, patches, inputs, notify, start) if soon
                    else unets.compiled(unet, patches, inputs, notify, int8=int8))
        if call is None:
            if int8:
                calibration.keep(inputs)
            return eager_forward(sample, timestep, encoder_hidden_states, *args, **kwargs)
        result = call([t.numpy() for t in inputs])[0]
        return UNet2DConditionOutput(sample=torch.from_numpy(result.copy()).to(sample.dtype))

    unet.forward = forward
    try:
        yield
    finally:
        if own_forward is not None:
            unet.forward = own_forward
        else:
            del unet.forward  # the class's own forward again
    if calibration.calls:  # the run is done (not interrupted): quantize for the runs after it
        try:
            with torch.inference_mode(False):
                unets.quantize(unet, patches, calibration.calls, calibration.example, notify)
        except Exception as error:  # the run's own result stands; int8 stays on the eager layers
            warnings.warn(f"quantizing the UNet to int8 failed ({type(error).__name__}: {error}): int8 stays on "
                          "the eager layers", stacklevel=2)
