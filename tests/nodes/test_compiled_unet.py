"""The compiled UNet (`compile` setting): exact against eager, cached on disk, never stale after a patch,
bounded on disk, and off unless asked for on CPUs where it was not measured faster."""

import gc
import math
import os
import subprocess
import sys
import threading

import pytest
import torch

import nodes.models.compiled as compiled_module
from engine.context import InterruptHandle, RunContext
from engine.events import PROGRESS
from engine.paths import Paths
from nodes.models.compile_cache import CompileCache, cache_key, user_cache_dir
from nodes.models.compiled import (
    AUTO_BACKGROUND_MIN_STEPS,
    COMPILE_DEFAULT_ENV,
    CompiledUnets,
    compile_wanted,
    compiled_unet_used,
)
from nodes.models.family import SD15
from nodes.models.graph_weights import GraphWeights, structure_of
from nodes.models.handles import ModelHandle
from nodes.models.patching import WeightPatch, model_patches_applied
from nodes.models.tiny import tiny_modules
from nodes.sampling import ModelSampling


class ConstantDelta:
    """A patch layer adding `value` everywhere (what a LoRA layer does, without the factors)."""

    def __init__(self, value: float):
        self.value = value

    @property
    def nbytes(self) -> int:
        return 4

    def delta(self, shape: torch.Size, device: torch.device) -> torch.Tensor:
        return torch.full(shape, self.value, device=device)


def psnr(output: torch.Tensor, reference: torch.Tensor) -> float:
    mse = float(((output - reference) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(float(reference.abs().max()) ** 2 / mse)


def run_context(settings: dict, events: list) -> RunContext:
    return RunContext("3", "p1", Paths(), InterruptHandle(), lambda name, data: events.append((name, data)),
                      settings=settings)


def another_checkpoint(seed: int) -> ModelHandle:
    """A UNet of the tiny model's architecture with other weights: it reuses the trace."""
    return ModelHandle(tiny_modules(SD15, seed=seed)["unet"].eval(), SD15, ModelSampling("epsilon"), "tiny")


@pytest.fixture(scope="module")
def model() -> ModelHandle:
    return another_checkpoint(5)


@pytest.fixture(scope="module")
def inputs(model):
    generator = torch.Generator().manual_seed(0)
    return (torch.randn(2, 4, 8, 8, generator=generator), torch.tensor([500.0]).expand(2),
            torch.randn(2, 77, model.unet.config.cross_attention_dim, generator=generator))


def sampled(model: ModelHandle, inputs, unets: CompiledUnets | None, settings: dict | None = None,
            events: list | None = None, steps: int | None = None, **kwargs) -> torch.Tensor:
    """One UNet call as the samplers make it: patches applied, then the compiled scope (for a run of `steps`),
    in inference mode."""
    ctx = run_context(settings if settings is not None else {"compile": "on"}, events if events is not None else [])
    x, t, embeds = inputs
    with model_patches_applied(model) as unet, compiled_unet_used(ctx, model, unets, steps), torch.inference_mode():
        return unet(x, t, encoder_hidden_states=embeds, **kwargs).sample


def eager(model: ModelHandle, inputs) -> torch.Tensor:
    return sampled(model, inputs, None, {"compile": "off"})


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    return tmp_path_factory.mktemp("compiled-unet")


@pytest.mark.slow
def test_compiled_output_is_exact_and_the_compile_is_announced(model, inputs, cache_root):
    unets = CompiledUnets(CompileCache(cache_root))
    events: list = []
    compiled = sampled(model, inputs, unets, events=events)
    assert psnr(compiled, eager(model, inputs)) >= 45
    assert unets.compilations == 1
    texts = [data.get("text", "") for name, data in events if name == PROGRESS]
    assert any(text.startswith("compiling UNet for this CPU, one-time") for text in texts)
    assert model.unet.forward.__func__ is type(model.unet).forward  # the module is as before


@pytest.mark.slow
def test_one_trace_serves_every_aligned_latent_size_and_odd_sizes_get_their_own(model, inputs, tmp_path):
    """Latents whose sides are multiples of the UNet's upsampling share a graph (any batch, prompt length);
    others take diffusers' explicit upsample sizes, traced per shape. Every one is exact."""
    unets = CompiledUnets(CompileCache(tmp_path))
    generator = torch.Generator().manual_seed(1)
    dim = model.unet.config.cross_attention_dim
    factor = 2 ** model.unet.num_upsamplers
    aligned = [(torch.randn(batch, 4, h * factor, w * factor, generator=generator), torch.full((batch,), 300.0),
                torch.randn(batch, tokens, dim, generator=generator))
               for batch, h, w, tokens in [(2, 4, 4, 77), (1, 6, 5, 77), (3, 8, 8, 154)]]
    for call in [inputs, *aligned]:
        assert psnr(sampled(model, call, unets), eager(model, call)) >= 45
    assert unets.compilations == 1
    odd = (torch.randn(1, 4, 4 * factor + 1, 3 * factor + 1, generator=generator), torch.tensor([300.0]),
           torch.randn(1, 77, dim, generator=generator))
    assert psnr(sampled(model, odd, unets), eager(model, odd)) >= 45
    assert unets.compilations == 2


@pytest.mark.slow
def test_a_new_process_loads_the_compiled_model_from_disk(model, inputs, cache_root):
    first = CompiledUnets(CompileCache(cache_root))
    reference = sampled(model, inputs, first)
    fresh = CompiledUnets(CompileCache(cache_root))  # nothing in memory, as in a new process
    events: list = []
    again = sampled(model, inputs, fresh, events=events)
    assert fresh.compilations == 0 and fresh.loads == 1
    assert not [data for name, data in events if name == PROGRESS]
    assert torch.equal(again, reference)


STRUCTURE_KEY_SCRIPT = """
from nodes.models.compile_cache import cache_key
from nodes.models.family import SD15
from nodes.models.graph_weights import structure_of
from nodes.models.tiny import tiny_modules
print(cache_key(structure_of(tiny_modules(SD15, seed=5)["unet"])))
"""


@pytest.mark.slow
def test_the_graphs_cache_key_is_the_same_in_every_process(model):
    """A new process must find the graph an earlier one traced: nothing in the key may depend on the
    process (diffusers' config holds a list made from a set, whose order follows the string hash seed)."""
    keys = {subprocess.run([sys.executable, "-c", STRUCTURE_KEY_SCRIPT], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip() for seed in ("1", "2")}
    assert keys == {cache_key(structure_of(model.unet))}


@pytest.mark.slow
def test_a_patched_model_never_reuses_the_unpatched_weights_nor_traces_again(model, inputs, cache_root):
    unets = CompiledUnets(CompileCache(cache_root))
    plain = sampled(model, inputs, unets)
    traces = unets.compilations
    patch = WeightPatch("unet", 0.5, {"conv_in.weight": ConstantDelta(0.1),
                                      "down_blocks.0.resnets.0.conv1.bias": ConstantDelta(-0.2)}, "test-lora")
    patched_model = ModelHandle(model.unet, SD15, model.model_sampling, "tiny", patches=(patch,))
    compiled = sampled(patched_model, inputs, unets)
    assert psnr(compiled, eager(patched_model, inputs)) >= 45
    assert psnr(compiled, plain) < 45  # the patch shows
    assert unets.compilations == traces and len(CompileCache(cache_root).entries()) == 1  # one graph, new weights
    assert torch.equal(sampled(model, inputs, unets), plain)  # and the unpatched model is itself again


@pytest.mark.slow
def test_another_checkpoint_of_the_same_architecture_reuses_the_trace(model, inputs, cache_root):
    sampled(model, inputs, CompiledUnets(CompileCache(cache_root)))  # traced at most once for this cache
    other = another_checkpoint(6)
    fresh = CompiledUnets(CompileCache(cache_root))  # a new process
    compiled = sampled(other, inputs, fresh)
    assert fresh.compilations == 0 and fresh.loads == 1
    assert psnr(compiled, eager(other, inputs)) >= 45
    assert psnr(compiled, sampled(model, inputs, fresh)) < 45  # its own weights, not the first model's


def test_a_graph_that_cannot_take_every_weight_is_not_used(model, inputs, tmp_path, monkeypatch):
    """Where the converter transformed a weight (found in no constant), the stand-in value would stay."""
    unets = CompiledUnets(CompileCache(tmp_path))
    real_locate = compiled_module.locate

    def locate_missing_one(graph, traced):
        found = real_locate(graph, traced)
        return GraphWeights({k: v for k, v in found.targets.items() if k != "conv_in.weight"}, ["conv_in.weight"])

    monkeypatch.setattr(compiled_module, "locate", locate_missing_one)
    with pytest.warns(UserWarning, match="stand-in values for conv_in.weight"):
        result = sampled(model, inputs, unets)
    assert unets.compilations == 1
    assert torch.equal(result, eager(model, inputs))


def test_a_graph_that_is_not_exact_when_traced_is_not_used(model, inputs, tmp_path, monkeypatch):
    """A weight found by bytes in no constant, yet reported as placed (as a constant the converter derived
    from it would be), leaves a stand-in value in the graph: the check against eager at trace time finds it."""
    unets = CompiledUnets(CompileCache(tmp_path))
    real_locate = compiled_module.locate

    def locate_silently_missing_one(graph, traced):
        found = real_locate(graph, traced)
        return GraphWeights({k: v for k, v in found.targets.items() if k != "conv_in.weight"}, [])

    monkeypatch.setattr(compiled_module, "locate", locate_silently_missing_one)
    with pytest.warns(UserWarning, match="not exact when traced"):
        result = sampled(model, inputs, unets)
    assert unets.compilations == 1
    assert torch.equal(result, eager(model, inputs))
    assert GraphWeights.load(next(tmp_path.iterdir())).mismatch.endswith("below 60")


def mid_block_residual(model: ModelHandle, inputs) -> torch.Tensor:
    """A residual of the mid block's output shape (what a ControlNet adds there): an input no graph takes."""
    x, t, embeds = inputs
    shapes: dict = {}
    handle = model.unet.mid_block.register_forward_hook(lambda module, args, out: shapes.update(mid=out.shape))
    with torch.inference_mode():
        model.unet(x, t, encoder_hidden_states=embeds)
    handle.remove()
    return torch.ones(shapes["mid"])


def test_calls_the_compiled_graph_cannot_express_run_eager(model, inputs, tmp_path):
    unets = CompiledUnets(CompileCache(tmp_path))
    x, t, embeds = inputs
    residual = mid_block_residual(model, inputs)
    with_residual = sampled(model, inputs, unets, mid_block_additional_residual=residual)
    with torch.inference_mode():
        expected = model.unet(x, t, encoder_hidden_states=embeds, mid_block_additional_residual=residual).sample
    assert torch.equal(with_residual, expected)
    assert unets.compilations == 0 and unets.loads == 0


def test_auto_compiles_where_bf16_is_not_native_and_memory_allows(model, inputs, tmp_path, monkeypatch):
    monkeypatch.delenv(COMPILE_DEFAULT_ENV)
    assert compile_wanted({}, model, "fp32") and compile_wanted({"compile": "auto"}, model, "fp32")
    assert not compile_wanted({"compile": "auto"}, model, "native-bf16")  # bf16 eager is faster there
    assert not compile_wanted({"compile": "off"}, model, "fp32")
    assert compile_wanted({"compile": "on"}, model, "native-bf16")
    with pytest.raises(ValueError, match="compile must be one of"):
        compile_wanted({"compile": "yes"}, model, "fp32")
    monkeypatch.setenv(COMPILE_DEFAULT_ENV, "off")  # the default where a run does not say
    assert not compile_wanted({}, model, "fp32") and compile_wanted({"compile": "auto"}, model, "fp32")
    monkeypatch.setattr(compiled_module, "available_memory_bytes", lambda: 1000)
    other = another_checkpoint(7)
    assert not compile_wanted({"compile": "auto"}, other, "fp32")  # too little memory left: eager
    assert compile_wanted({"compile": "on"}, other, "fp32")
    unets = CompiledUnets(CompileCache(tmp_path))
    assert torch.equal(sampled(model, inputs, unets, settings={}), eager(model, inputs))
    assert unets.compilations == 0 and not list(tmp_path.iterdir())


def test_the_disk_cache_keeps_under_its_bound_dropping_the_least_recently_used(tmp_path):
    cache = CompileCache(tmp_path, bound_bytes=2500)

    def kilobyte(folder):
        (folder / "unet.bin").write_bytes(b"x" * 1000)

    for key in ("a", "b"):
        cache.store(key, kilobyte)
    os.utime(tmp_path / "a", (1, 1))
    os.utime(tmp_path / "b", (2, 2))
    assert cache.entry("a") is not None  # reading marks it used: b is now the oldest
    cache.store("c", kilobyte)
    assert sorted(key for _, key, _ in cache.entries()) == ["a", "c"]
    assert cache.total_bytes() <= 2500


def test_concurrent_writers_of_one_entry_leave_one_complete_copy(tmp_path):
    cache = CompileCache(tmp_path)
    barrier = threading.Barrier(4)

    def write(folder):
        barrier.wait()  # every writer is mid-write at once
        (folder / "unet.xml").write_text(f"written by {threading.get_ident()}")

    threads = [threading.Thread(target=cache.store, args=("k", write)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [p.name for p in tmp_path.iterdir()] == ["k"]  # no temporary folder left behind
    assert (tmp_path / "k" / "unet.xml").read_text().startswith("written by ")


def test_the_cache_lives_in_the_user_cache_folder():
    assert user_cache_dir({"SDGRAPH_CACHE_DIR": "/x/y"}) == user_cache_dir({"SDGRAPH_CACHE_DIR": "/x/y"})
    assert str(user_cache_dir({"SDGRAPH_CACHE_DIR": "/x/y"})) == "/x/y"
    assert str(user_cache_dir({"XDG_CACHE_HOME": "/c"})) == "/c/sdgraph"
    assert user_cache_dir({}).parts[-2:] == (".cache", "sdgraph")


class HeldCompiles:
    """Background compiles held back until `release()`, and the calls each compiled model answers. Made once
    the graph is traced (`traced`): the trace's own check compiles in the foreground."""

    def __init__(self, monkeypatch):
        self.gate = threading.Event()
        self.calls = 0
        real = compiled_module._compile

        def compile_when_released(*args):
            assert self.gate.wait(60)
            compiled = real(*args)

            def counted(arrays):
                self.calls += 1
                return compiled(arrays)

            return counted

        monkeypatch.setattr(compiled_module, "_compile", compile_when_released)

    def release(self) -> None:
        self.gate.set()


@pytest.fixture
def traced(model, inputs, cache_root):
    """The tiny UNet's graph in `cache_root`'s disk cache (traced by the first test that needs it)."""
    sampled(model, inputs, CompiledUnets(CompileCache(cache_root)))


@pytest.mark.slow
def test_auto_samples_eager_while_the_compile_runs_in_the_background_then_switches(model, inputs, cache_root, traced,
                                                                                   monkeypatch):
    held = HeldCompiles(monkeypatch)
    unets = CompiledUnets(CompileCache(cache_root))
    events: list = []
    reference = eager(model, inputs)
    for _ in range(2):  # the compile is under way: these calls run eager, at eager's start-up
        assert torch.equal(sampled(model, inputs, unets, {"compile": "auto"}, events), reference)
    texts = [data.get("text", "") for name, data in events if name == PROGRESS]
    assert texts.count("compiling UNet for this CPU in the background; sampling eager meanwhile") == 1
    assert held.calls == 0
    held.release()
    unets.wait_for_background(60)
    compiled = sampled(model, inputs, unets, {"compile": "auto"})
    assert held.calls == 1 and psnr(compiled, reference) >= 45
    assert model.unet.forward.__func__ is type(model.unet).forward  # the module is as before


@pytest.mark.slow
def test_a_background_compile_keeps_the_weights_it_started_with_after_the_run_ends(model, inputs, cache_root, traced,
                                                                                   monkeypatch):
    held = HeldCompiles(monkeypatch)
    unets = CompiledUnets(CompileCache(cache_root))
    patch = WeightPatch("unet", 0.5, {"conv_in.weight": ConstantDelta(0.1)}, "test-lora")
    patched_model = ModelHandle(model.unet, SD15, model.model_sampling, "tiny", patches=(patch,))
    patched_eager = eager(patched_model, inputs)
    assert torch.equal(sampled(patched_model, inputs, unets, {"compile": "auto"}), patched_eager)
    held.release()  # the run is over and its patch taken off the module; the compile still has its weights
    unets.wait_for_background(60)
    assert psnr(sampled(patched_model, inputs, unets, {"compile": "auto"}), patched_eager) >= 45
    assert held.calls == 1
    # the unpatched model is another compile: eager until it is ready, never the patched graph
    assert torch.equal(sampled(model, inputs, unets, {"compile": "auto"}), eager(model, inputs))
    unets.wait_for_background(60)
    plain = sampled(model, inputs, unets, {"compile": "auto"})
    assert held.calls == 2 and psnr(plain, eager(model, inputs)) >= 45 and psnr(plain, patched_eager) < 45


@pytest.mark.slow
def test_a_background_compile_that_fails_leaves_sampling_eager_with_a_warning(model, inputs, cache_root, traced,
                                                                              monkeypatch):
    def fails(*args):
        raise MemoryError("no room for the compiled weights")

    monkeypatch.setattr(compiled_module, "_compile", fails)
    unets = CompiledUnets(CompileCache(cache_root))
    reference = eager(model, inputs)
    assert torch.equal(sampled(model, inputs, unets, {"compile": "auto"}), reference)
    with pytest.warns(UserWarning, match="compiling the UNet failed .MemoryError: no room"):
        unets.wait_for_background(60)
    assert torch.equal(sampled(model, inputs, unets, {"compile": "auto"}), reference)


@pytest.mark.slow
def test_a_compiled_unet_is_released_with_its_model(inputs, cache_root, traced):
    unets = CompiledUnets(CompileCache(cache_root))
    kept, dropped = another_checkpoint(6), another_checkpoint(7)
    sampled(kept, inputs, unets)
    sampled(dropped, inputs, unets)
    assert unets.held() == 2  # each holds a copy of its UNet's weights
    del dropped  # the model unloaded (`/free`, or evicted from the outputs' cache)
    gc.collect()
    assert unets.held() == 1
    assert psnr(sampled(kept, inputs, unets), eager(kept, inputs)) >= 45 and unets.compilations == 0


@pytest.mark.slow
def test_a_pending_background_compile_is_dropped_with_its_model(inputs, cache_root, traced, monkeypatch):
    held = HeldCompiles(monkeypatch)
    unets = CompiledUnets(CompileCache(cache_root))
    model = another_checkpoint(8)
    sampled(model, inputs, unets, {"compile": "auto"})
    assert unets.held() == 1  # the compile is under way
    del model
    gc.collect()
    assert unets.held() == 0
    held.release()
    unets.wait_for_background(60)
    assert unets.held() == 0 and held.calls == 0


@pytest.mark.slow
def test_auto_compiles_in_the_background_for_a_long_run_or_a_model_that_samples_again(inputs, cache_root, traced):
    short, long = AUTO_BACKGROUND_MIN_STEPS - 1, AUTO_BACKGROUND_MIN_STEPS
    unets = CompiledUnets(CompileCache(cache_root))
    model = another_checkpoint(9)
    events: list = []
    assert torch.equal(sampled(model, inputs, unets, {"compile": "auto"}, events, steps=short), eager(model, inputs))
    assert unets.held() == 0 and not events, "a short one-shot run would pay the compile and never use it"
    sampled(model, inputs, unets, {"compile": "auto"}, events, steps=short)  # the model samples again
    assert unets.held() == 1 and len(events) == 1
    unets.wait_for_background(60)
    assert psnr(sampled(model, inputs, unets, {"compile": "auto"}, steps=1), eager(model, inputs)) >= 45
    assert unets.held() == 1, "a short run uses the compiled call that is there"

    first_run_long = another_checkpoint(10)
    sampled(first_run_long, inputs, unets, {"compile": "auto"}, steps=long)
    assert unets.held() == 2
    unets.wait_for_background(60)


@pytest.mark.slow
def test_the_graph_kept_on_disk_holds_no_weights(model, inputs, cache_root, traced):
    """Its weights go in when compiling, so the cache keeps the structure alone, not a copy of the UNet."""
    ir, weights = CompiledUnets(CompileCache(cache_root)).traced_graph(model.unet, inputs, lambda text: None)
    weight_bytes = sum(t.numel() * t.element_size() for t in model.unet.parameters())
    assert weights.usable and ir.with_suffix(".bin").stat().st_size < weight_bytes / 100
    assert sorted(path.name for path in ir.parent.iterdir()) == ["unet.bin", "unet.xml", "weights.json"]
