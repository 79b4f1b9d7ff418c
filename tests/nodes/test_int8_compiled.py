"""`precision=int8` with `compile`: the UNet's graph, holding the model's weights, quantized by NNCF and run by
OpenVINO. The first run of a set of weights calibrates on the eager int8 layers and quantizes when done;
later runs use the graph: close to fp32 but quantized, made once per set of weights and cached on disk,
made anew for a changed LoRA or strength (never another model's graph). The eager int8 layers are left
for the calls the graph cannot express."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

import nodes.models.compiled as compiled_module
from engine.events import PROGRESS
from nodes.models.compile_cache import CompileCache
from nodes.models.compiled import COMPILE_DEFAULT_ENV, CompiledUnets, compile_wanted, compiled_unet_used
from nodes.models.family import SD15
from nodes.models.graph_weights import GraphWeights
from nodes.models.handles import ModelHandle
from nodes.models.patching import WeightPatch, model_patches_applied
from nodes.models.quantize import Int8Weights
from nodes.models.quantized_graph import CALIBRATION_CALLS, CALIBRATION_SIDE, calibration_call, calibration_side, spread
from nodes.models.tiny import tiny_modules
from nodes.sampling import ModelSampling
from tests.nodes.test_compiled_unet import ConstantDelta, eager, mid_block_residual, run_context, sampled

# The tiny UNet's output through the quantized graph against fp32 eager: 38.6 dB measured (the eager int8
# layers: 44.4 dB). The full-size SD1.5 layout's figures are in bench/RESULTS.md (bench/int8.py).
MIN_SNR_DB = 30.0


def snr_db(value: torch.Tensor, reference: torch.Tensor) -> float:
    error = float((value - reference).norm())
    return math.inf if error == 0 else 20 * math.log10(float(reference.norm()) / error)


@pytest.fixture(scope="module")
def fp32_model() -> ModelHandle:
    return ModelHandle(tiny_modules(SD15, seed=5)["unet"].eval(), SD15, ModelSampling("epsilon"), "tiny")


@pytest.fixture(scope="module")
def int8_model(fp32_model) -> ModelHandle:
    return replace(fp32_model, int8=Int8Weights())


@pytest.fixture(scope="module")
def inputs(fp32_model):
    generator = torch.Generator().manual_seed(0)
    return (torch.randn(2, 4, 8, 8, generator=generator), torch.tensor([500.0]).expand(2),
            torch.randn(2, 77, fp32_model.unet.config.cross_attention_dim, generator=generator))


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    return tmp_path_factory.mktemp("int8-graphs")


@pytest.fixture(scope="module")
def first_run(int8_model, inputs, cache_root):
    """The first int8 run with compile on (it calibrates on the eager int8 layers and quantizes when done),
    then the second (on the graph): (first output, second output, events, the process's compiled UNets)."""
    unets = CompiledUnets(CompileCache(cache_root))
    events: list = []
    first = sampled(int8_model, inputs, unets, events=events)
    return first, sampled(int8_model, inputs, unets, events=events), events, unets


@pytest.mark.slow
def test_the_first_run_calibrates_on_the_eager_layers_and_later_runs_use_the_quantized_graph(
        first_run, fp32_model, int8_model, inputs):
    first, graph_output, events, unets = first_run
    assert torch.equal(first, sampled(int8_model, inputs, None, {"compile": "off"})), "the eager int8 layers"
    reference = eager(fp32_model, inputs)
    assert snr_db(graph_output, reference) >= MIN_SNR_DB
    assert not torch.equal(graph_output, first), "the graph, not the eager layers"
    assert snr_db(graph_output, reference) < 80, "really quantized, not the fp32 graph"
    assert unets.compilations == 1 and unets.quantizations == 1
    texts = [data.get("text", "") for name, data in events if name == PROGRESS]
    assert any(text.startswith("quantizing UNet to int8 for this model, one-time") for text in texts)
    assert not any("forward" in m.__dict__ for m in int8_model.unet.modules()), "the module is as before"


@pytest.mark.slow
def test_the_quantized_graph_is_made_once_and_a_new_process_reads_it_from_disk(first_run, int8_model, inputs,
                                                                                cache_root):
    _, graph_output, _, unets = first_run
    assert torch.equal(sampled(int8_model, inputs, unets), graph_output)
    assert unets.quantizations == 1
    fresh = CompiledUnets(CompileCache(cache_root))  # nothing in memory, as in a new process
    events: list = []
    assert torch.equal(sampled(int8_model, inputs, fresh, events=events), graph_output)
    assert fresh.quantizations == 0 and fresh.compilations == 0 and fresh.loads == 1
    assert not [data for name, data in events if name == PROGRESS and "text" in data], "no notice: nothing made"


@pytest.mark.slow
def test_a_changed_lora_or_strength_quantizes_anew_and_never_reuses_another_graph(first_run, fp32_model,
                                                                                   int8_model, inputs, cache_root):
    _, plain, _, _ = first_run
    unets = CompiledUnets(CompileCache(cache_root))

    def lora(strength: float) -> WeightPatch:
        return WeightPatch("unet", strength, {"conv_in.weight": ConstantDelta(0.1),
                                              "down_blocks.0.resnets.0.conv1.weight": ConstantDelta(-0.05)}, "lora")

    patched = replace(int8_model, patches=(lora(1.0),))
    sampled(patched, inputs, unets)  # calibrates and quantizes for these weights
    with_lora = sampled(patched, inputs, unets)
    assert unets.quantizations == 1 and unets.compilations == 0, "new weights: quantized anew, not traced"
    assert snr_db(with_lora, eager(replace(patched, int8=None), inputs)) >= MIN_SNR_DB
    assert snr_db(with_lora, plain) < MIN_SNR_DB, "the LoRA shows"

    stronger_model = replace(int8_model, patches=(lora(2.0),))
    sampled(stronger_model, inputs, unets)
    stronger = sampled(stronger_model, inputs, unets)
    assert unets.quantizations == 2
    assert snr_db(stronger, eager(replace(fp32_model, patches=(lora(2.0),)), inputs)) >= MIN_SNR_DB
    assert not torch.equal(stronger, with_lora)

    assert torch.equal(sampled(int8_model, inputs, unets), plain), "without it, the first graph again"
    assert unets.quantizations == 2


@pytest.mark.slow
def test_quantizing_writes_nothing_to_stdout(inputs, tmp_path, capfd):
    """The CLI prints the saved files' paths on stdout: NNCF's notes and progress bars must not land there."""
    model = ModelHandle(tiny_modules(SD15, seed=6)["unet"].eval(), SD15, ModelSampling("epsilon"), "other",
                        int8=Int8Weights())
    unets = CompiledUnets(CompileCache(tmp_path))
    sampled(model, inputs, unets)
    assert unets.quantizations == 1
    assert capfd.readouterr().out == ""


@pytest.mark.slow
def test_an_interrupted_calibrating_run_quantizes_nothing(int8_model, inputs, tmp_path):
    unets = CompiledUnets(CompileCache(tmp_path))
    ctx = run_context({"compile": "on"}, [])
    x, t, embeds = inputs
    with pytest.raises(KeyboardInterrupt):
        with model_patches_applied(int8_model) as unet, compiled_unet_used(ctx, int8_model, unets), \
                torch.inference_mode():
            unet(x, t, encoder_hidden_states=embeds)
            raise KeyboardInterrupt
    assert unets.quantizations == 0 and not CompileCache(tmp_path).entries()


@pytest.mark.slow
def test_a_graph_that_cannot_take_the_weights_leaves_int8_on_the_eager_layers(int8_model, inputs, tmp_path,
                                                                              monkeypatch):
    real_locate = compiled_module.locate

    def locate_missing_one(graph, traced):
        found = real_locate(graph, traced)
        return GraphWeights({k: v for k, v in found.targets.items() if k != "conv_in.weight"}, ["conv_in.weight"])

    monkeypatch.setattr(compiled_module, "locate", locate_missing_one)
    unets = CompiledUnets(CompileCache(tmp_path))
    with pytest.warns(UserWarning, match="int8 stays on the eager layers"):
        first = sampled(int8_model, inputs, unets)
    with pytest.warns(UserWarning, match="int8 stays on the eager layers"):  # said at every such run
        again = sampled(int8_model, inputs, unets)
    assert unets.quantizations == 0 and unets.compilations == 1, "traced once, never quantized"
    assert torch.equal(first, again) and torch.equal(again, sampled(int8_model, inputs, None, {"compile": "off"}))


@pytest.mark.slow
def test_a_failed_quantization_keeps_the_runs_result_and_stores_nothing(int8_model, inputs, tmp_path, monkeypatch):
    def fail(graph, calibration):
        raise MemoryError("no room for the statistics")

    monkeypatch.setattr(compiled_module, "quantized", fail)
    unets = CompiledUnets(CompileCache(tmp_path))
    with pytest.warns(UserWarning, match="quantizing the UNet to int8 failed .MemoryError: no room"):
        result = sampled(int8_model, inputs, unets)
    assert torch.equal(result, sampled(int8_model, inputs, None, {"compile": "off"}))
    assert unets.quantizations == 0
    entries = CompileCache(tmp_path).entries()
    assert len(entries) == 1 and (tmp_path / entries[0][1] / "weights.json").is_file(), "the fp32 graph only"


@pytest.mark.slow
def test_calls_the_graph_cannot_express_run_on_the_eager_int8_layers(int8_model, fp32_model, inputs, tmp_path):
    unets = CompiledUnets(CompileCache(tmp_path))
    model = replace(int8_model, int8=Int8Weights())
    residual = mid_block_residual(fp32_model, inputs)
    with_residual = sampled(model, inputs, unets, mid_block_additional_residual=residual)
    assert unets.quantizations == 0 and len(model.int8) > 0, "the eager int8 layers computed it, nothing kept"
    expected = sampled(model, inputs, None, {"compile": "off"}, mid_block_additional_residual=residual)
    assert torch.equal(with_residual, expected)


def test_auto_quantizes_the_graph_on_every_cpu_and_off_keeps_the_eager_int8_layers(int8_model, monkeypatch):
    monkeypatch.delenv(COMPILE_DEFAULT_ENV)
    for kind in ("fp32", "native-bf16"):  # the quantized graph is faster than the eager int8 layers on both
        assert compile_wanted({}, int8_model, kind) and compile_wanted({"compile": "auto"}, int8_model, kind)
    assert not compile_wanted({"compile": "off"}, int8_model, "fp32")
    monkeypatch.setattr(compiled_module, "nncf_available", lambda: False)
    assert not compile_wanted({"compile": "auto"}, int8_model, "fp32")  # the eager int8 layers then
    with pytest.raises(ValueError, match="NNCF at precision int8: pip install openvino nncf"):
        compile_wanted({"compile": "on"}, int8_model, "fp32")


def test_calibration_keeps_calls_from_noise_to_image_at_a_small_size():
    sample, context = torch.randn(2, 4, 64, 48), torch.randn(2, 77, 32)
    call = calibration_call((sample, torch.full((2,), 999.0), context), multiple=8)
    assert call[0].shape == (2, 4, CALIBRATION_SIDE, CALIBRATION_SIDE)
    assert np.isin(call[0], sample.numpy()).all(), "the run's own latent, subsampled (its variance kept)"
    assert (call[2] == context.numpy()).all() and float(call[1][0]) == 999.0
    odd = calibration_call((torch.randn(1, 4, 41, 33), torch.tensor([999.0]), context[:1]), multiple=None)
    assert odd[0].shape == (1, 4, 41, 33), "a graph traced for one shape keeps it"
    assert calibration_side(20, 8) == 20 and calibration_side(40, 16) == 32 and calibration_side(96, 64) == 64
    assert spread(list(range(20))) == [0, 6, 13, 19] and spread([1, 2]) == [1, 2]
    assert len(spread(list(range(20)))) == CALIBRATION_CALLS
