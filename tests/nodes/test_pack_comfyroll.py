"""Comfyroll Studio's conversion, aspect-ratio and animation nodes and Custom-Scripts' Show Text, with the values
the packs' code gives, and their `/object_info` as the packs declare them."""

import pytest
import torch

from engine.context import InterruptHandle, RunContext
from engine.declare import NodeResult
from engine.paths import Paths
from engine.registry import NodeRegistry
from nodes.conditioning.value import CondEntry
from nodes.packs.comfyroll import (
    CRApplyControlNet,
    CRApplyLoRAStack,
    CRAspectRatioSD15,
    CRAspectRatioSDXL,
    CRFloatToString,
    CRIntegerToString,
    CRLoRAStack,
    CRPromptText,
    CRSeed,
)
from nodes.packs.comfyroll_animation import (
    CRCentralSchedule,
    CRCurrentFrame,
    CREncodeScheduledPrompts,
    CRPromptScheduler,
    CRSimplePromptList,
    CRSimplePromptListKeyframes,
    CRSimplePromptScheduler,
    CRSimpleTextScheduler,
    CRSimpleValueScheduler,
    keyframe_value,
    prompt_keyframes,
)
from nodes.packs.custom_scripts import ShowText
from tests.nodes.comfy_packs2_object_info import PACK_NODES
from tests.nodes.test_pack_object_info import comparable


@pytest.fixture
def ctx(tmp_path):
    return RunContext(node_id="1", prompt_id="test", paths=Paths(tmp_path / "models"), interrupt=InterruptHandle(),
                      emit=lambda event, data: None, settings={})


@pytest.fixture(scope="module")
def object_info():
    registry = NodeRegistry()
    registry.load_package("nodes.packs")
    return registry.object_info()


@pytest.mark.parametrize("class_type", sorted(PACK_NODES))
def test_inputs_and_outputs_match_the_pack(object_info, class_type):
    ours, theirs = object_info[class_type], PACK_NODES[class_type]
    for section in ("required", "optional"):
        expected, actual = theirs.get(section, {}), ours["input"].get(section, {})
        assert list(actual) == list(expected), section
        for name, entry in expected.items():
            if entry[0] is None:   # choices read from a folder
                assert actual[name][0][0] == "None", name
                continue
            assert comparable(actual[name]) == comparable(entry), name
    assert ours["output"] == theirs["output"]
    assert ours["output_name"] == theirs["output_name"]
    assert ours["output_node"] == theirs.get("output_node", False)
    assert ours["category"].startswith("🧩 Comfyroll Studio/") or class_type.endswith("|pysssss")


def test_numbers_are_written_as_python_writes_them(ctx):
    assert CRIntegerToString().run(ctx, int_=2**63 + 5)[0] == "9223372036854775813"
    assert CRFloatToString().run(ctx, float_=0.75)[0] == "0.75"
    assert CRFloatToString().run(ctx, float_=2)[0] == "2.0"   # a FLOAT widget's 2 is 2.0 in ComfyUI
    assert CRIntegerToString().run(ctx, int_=6)[1].endswith("#cr-integer-to-string")


@pytest.mark.parametrize("preset, swap, size", [("2:3 portrait 512x768", "Off", (512, 768)),
                                                ("2:3 portrait 512x768", "On", (768, 512)),
                                                ("2.39:1 anamorphic 1224x512", "Off", (1224, 512)),
                                                ("custom", "Off", (320, 256)), ("custom", "On", (256, 320))])
def test_sd15_aspect_ratio_gives_the_preset_size_and_an_empty_latent_of_it(ctx, preset, swap, size):
    width, height, factor, batch, latent, help_url = CRAspectRatioSD15().run(
        ctx, width=320, height=256, aspect_ratio=preset, swap_dimensions=swap, upscale_factor=1.5, batch_size=2)
    assert (width, height, factor, batch) == (*size, 1.5, 2)
    assert torch.equal(latent["samples"], torch.zeros(2, 4, size[1] // 8, size[0] // 8))
    assert help_url.endswith("#cr-sd15-aspect-ratio")


def test_sdxl_aspect_ratio_presets_and_the_682_that_floors_to_85_latent_rows(ctx):
    out = CRAspectRatioSDXL().run(ctx, width=1024, height=1024, aspect_ratio="9:21 portrait 640x1536",
                                  swap_dimensions="Off", upscale_factor=1.0, batch_size=1)
    assert out[:2] == (640, 1536) and out[4]["samples"].shape == (1, 4, 192, 80)
    out = CRAspectRatioSD15().run(ctx, width=512, height=512, aspect_ratio="3:4 portrait 512x682",
                                  swap_dimensions="Off", upscale_factor=1.0, batch_size=1)
    assert out[4]["samples"].shape == (1, 4, 85, 64)


def test_aspect_ratio_latents_are_capped_like_empty_latents(ctx):
    ctx.settings["max_latent_pixels"] = 512 * 512
    with pytest.raises(ValueError, match="width, height, aspect_ratio or batch_size"):
        CRAspectRatioSD15().run(ctx, width=512, height=512, aspect_ratio="2:3 portrait 512x768",
                                swap_dimensions="Off", upscale_factor=1.0, batch_size=1)


def test_current_frame_passes_its_index_and_prints_when_asked(ctx, capsys):
    assert CRCurrentFrame().run(ctx, index=7, print_to_console="No") == (7,)
    assert capsys.readouterr().out == ""
    assert CRCurrentFrame().run(ctx, index=-3, print_to_console="Yes") == (-3,)
    assert capsys.readouterr().out == "[Info] CR Current Frame:-3\n"


SCHEDULE = "0, 0.7\n2, 0.8\n\n4, 0.95\n6,1024"


@pytest.mark.parametrize("frame, value", [(0, "0.7"), (1, "0.7"), (2, "0.8"), (3, "0.8"), (4, "0.95"),
                                          (5, "0.95"), (6, "1024"), (100, "1024")])
def test_a_frame_takes_its_own_keyframe_or_the_last_one_before_it(frame, value):
    assert keyframe_value(SCHEDULE, frame, "test") == value


def test_a_frame_before_the_first_keyframe_has_no_value(ctx):
    assert keyframe_value("2, a\n4, b", 1, "test") == ""
    with pytest.raises(ValueError, match="must start at frame 0"):
        CRSimpleTextScheduler().run(ctx, schedule="2, a\n4, b", current_frame=1)


def test_value_scheduler_gives_the_integer_part_and_the_float(ctx):
    assert CRSimpleValueScheduler().run(ctx, schedule=SCHEDULE, current_frame=5)[:2] == (0, 0.95)
    assert CRSimpleValueScheduler().run(ctx, schedule=SCHEDULE, current_frame=6)[:2] == (1024, 1024.0)
    assert CRSimpleValueScheduler().run(ctx, schedule="0, 12.9", current_frame=0)[:2] == (12, 12.9)
    with pytest.raises(ValueError, match="'tall' at frame 0 is not a number"):
        CRSimpleValueScheduler().run(ctx, schedule="0, tall", current_frame=0)


def test_text_scheduler_keeps_commas_after_the_first(ctx):
    schedule = "0, 1girl, long grey hair\n2, 1girl, long blue hair"
    assert CRSimpleTextScheduler().run(ctx, schedule=schedule, current_frame=3)[0] == "1girl, long blue hair"


@pytest.mark.parametrize("schedule", ["", "zero, a", "0 a"])
def test_malformed_schedules_are_errors_naming_the_node(ctx, schedule):
    with pytest.raises(ValueError, match="CR Simple Text Scheduler"):
        CRSimpleTextScheduler().run(ctx, schedule=schedule, current_frame=0)


def test_show_text_shows_and_passes_its_text(ctx):
    result = ShowText().run(ctx, text="1girl, long red hair")
    assert isinstance(result, NodeResult)
    assert result.outputs == ("1girl, long red hair",)
    assert result.ui == {"text": ["1girl, long red hair"]}


def test_a_ui_workflow_schedules_text_for_the_current_frame_and_shows_it(tmp_path):
    """C3-style iterative workflow: frame counter → text scheduler (its current_frame a converted widget) →
    Show Text, whose saved widgets_values (the text it last showed) are not inputs."""
    from engine.config import EngineConfig, build_registry
    from engine.execute import Executor
    from engine.ui_format import ui_to_api

    ui = {"nodes": [
        {"id": 1, "type": "CR Current Frame", "inputs": [], "widgets_values": [3, "No"],
         "outputs": [{"name": "index", "type": "INT", "links": [1]}]},
        {"id": 2, "type": "CR Simple Text Scheduler", "widgets_values": ["0, grey\n2, blue\n4, red", 0],
         "inputs": [{"name": "current_frame", "type": "INT", "link": 1, "widget": {"name": "current_frame"}}],
         "outputs": [{"name": "STRING", "type": "STRING", "links": [2]},
                     {"name": "show_help", "type": "STRING", "links": None}]},
        {"id": 3, "type": "ShowText|pysssss", "widgets_values": ["", "1girl, long red hair"],
         "inputs": [{"name": "text", "type": "STRING", "link": 2}],
         "outputs": [{"name": "STRING", "type": "STRING", "links": None}]}],
        "links": [[1, 1, 0, 2, 1, "INT"], [2, 2, 0, 3, 0, "STRING"]], "version": 0.4}
    registry = build_registry(EngineConfig(extension_dirs=[]))
    workflow = ui_to_api(ui, registry)
    paths = Paths(tmp_path / "models", tmp_path / "input", tmp_path / "output", tmp_path / "temp")
    executor = Executor(registry, paths)
    result = executor.execute(workflow)
    assert result.status == "success", result.error
    assert result.outputs["3"] == {"text": ["blue"]}


DEFORUM = '"0": "1girl, long grey hair",\n"5": "1girl, (blue:1.2) hair",\n"10": "1girl, long red hair"'


@pytest.mark.parametrize("frame, expected", [
    (0, ("1girl, long grey hair", "1girl, long grey hair", 1.0)),
    (2, ("1girl, long grey hair", "1girl, (blue,1.2) hair", 0.6)),   # Deforum's ':' → ',' inside prompts too
    (5, ("1girl, (blue,1.2) hair", "1girl, (blue,1.2) hair", 1.0)),
    (9, ("1girl, (blue,1.2) hair", "1girl, long red hair", 0.2)),
    (12, ("1girl, long red hair", "1girl, long red hair", 1.0))])
def test_simple_prompt_scheduler_gives_current_and_next_prompts_and_the_current_share(ctx, frame, expected):
    current, following, weight, _ = CRSimplePromptScheduler().run(
        ctx, keyframe_list=DEFORUM, current_frame=frame, keyframe_format="Deforum")
    assert (current, following) == expected[:2]
    assert weight == pytest.approx(expected[2])


def test_cr_format_prompt_keyframes_drop_quotes_and_keep_colons():
    schedule = '0, a "quoted" (word:1.1)\n\n4, b'
    assert prompt_keyframes(schedule.split("\n"), 1, "test") == ("a quoted (word:1.1)", "b", 0, 4)
    assert CRSimplePromptScheduler().run(None, keyframe_list=schedule, current_frame=1,
                                         keyframe_format="Deforum")[0] == "a quoted (word,1.1)"


def test_simple_prompt_scheduler_refuses_frames_before_the_first_keyframe_and_bad_lines(ctx):
    with pytest.raises(ValueError, match="no prompt for frame 1"):
        CRSimplePromptScheduler().run(ctx, keyframe_list="3, late", current_frame=1, keyframe_format="CR")
    with pytest.raises(ValueError, match="is not 'frame_number, prompt'"):
        CRSimplePromptScheduler().run(ctx, keyframe_list="three, late", current_frame=1, keyframe_format="CR")


def test_encode_scheduled_prompts_averages_current_and_next_by_weight(models_dir, tmp_path):
    from nodes.conditioning_nodes import CLIPTextEncode
    from nodes.loaders import CheckpointLoaderSimple

    ctx = RunContext(node_id="1", prompt_id="test", paths=Paths(models_dir, tmp_path), interrupt=InterruptHandle(),
                     emit=lambda event, data: None, settings={})
    clip = CheckpointLoaderSimple().run(ctx, ckpt_name="tiny-sd15.safetensors")[1]
    current = CLIPTextEncode().run(ctx, text="a red circle", clip=clip)[0][0]
    following = CLIPTextEncode().run(ctx, text="a blue square", clip=clip)[0][0]
    [blended], _ = CREncodeScheduledPrompts().run(ctx, clip=clip, current_prompt="a red circle",
                                                  next_prompt="a blue square", weight=0.25)
    assert torch.allclose(blended.embeds, 0.25 * current.embeds + 0.75 * following.embeds, atol=1e-6)
    if current.pooled is not None:
        assert torch.allclose(blended.pooled, 0.25 * current.pooled + 0.75 * following.pooled, atol=1e-6)


def test_seed_passes_its_seed(ctx):
    assert CRSeed().run(ctx, seed=2**64 - 1) == (2**64 - 1, "https://github.com/Suzie1/ComfyUI_Comfyroll_CustomNodes"
                                                             "/wiki/Core-Nodes#cr-seed")


def test_prompt_text_passes_its_text(ctx):
    assert CRPromptText().run(ctx, prompt="embedding:EasyNegative, ")[0] == "embedding:EasyNegative, "


class StubControlNet:
    applied_net = object()
    source = "stub.safetensors"


def test_apply_controlnet_adds_the_control_only_when_on_with_strength(ctx):
    conditioning = (CondEntry(embeds=torch.zeros(1, 77, 8)),)
    image = torch.rand(1, 16, 24, 3)
    assert CRApplyControlNet().run(ctx, conditioning, StubControlNet(), image, "Off", 1.0)[0] is conditioning
    assert CRApplyControlNet().run(ctx, conditioning, StubControlNet(), image, "On", 0.0)[0] is conditioning
    [entry], help_url = CRApplyControlNet().run(ctx, conditioning, StubControlNet(), image, "On", 0.7)
    [control] = entry.control
    assert control.net is StubControlNet.applied_net and control.strength == 0.7
    assert torch.equal(control.hint, image.movedim(-1, 1))
    assert entry.control_to_uncond   # as Apply ControlNet (OLD), whose copy the pack's node is
    assert help_url.endswith("#cr-apply-controlnet")


def test_central_schedule_tags_each_line_with_its_alias_after_a_connected_schedule(ctx):
    schedule, text = CRCentralSchedule().run(
        ctx, schedule_1="0, a\n4, b", schedule_type1="Prompt", schedule_alias1="P1",
        schedule_2="schedule", schedule_type2="Value", schedule_alias2="",   # no alias: left out
        schedule_3="0, 0.5", schedule_type3="Value", schedule_alias3="V1", schedule_format="CR",
        schedule=[("T1", "0, x")])
    assert schedule == [("T1", "0, x"), ("P1", "0, a"), ("P1", "4, b"), ("V1", "0, 0.5")]
    assert text == "T1,0, xP1,0, a\n4, b\nV1,0, 0.5\n"


PROMPT_SCHEDULER = dict(default_prompt="default", interpolate_prompt="Yes", prepend_text="anime",
                        append_text="2D")


def test_prompt_scheduler_modes(ctx):
    run = CRPromptScheduler().run
    assert run(ctx, mode="Default Prompt", current_frame=3, schedule_format="CR", **PROMPT_SCHEDULER)[:3] == (
        "default", "default", 1.0)
    keyframes = '"0": "grey hair",\n  "4": "blue hair"'
    assert run(ctx, mode="Keyframe List", current_frame=1, schedule_format="Deforum", keyframe_list=keyframes,
               **PROMPT_SCHEDULER)[:3] == ("anime, grey hair, 2D", "anime, blue hair, 2D", 0.75)
    schedule = [("P1", "0, red"), ("P2", "0, green"), ("P1", "2, blue")]
    assert run(ctx, mode="Schedule", current_frame=1, schedule_format="CR", schedule=schedule, schedule_alias="P2",
               **PROMPT_SCHEDULER)[:3] == ("anime, green, 2D", "anime, green, 2D", 1.0)
    assert run(ctx, mode="Schedule", current_frame=1, schedule_format="CR", schedule=schedule, schedule_alias="P1",
               **{**PROMPT_SCHEDULER, "interpolate_prompt": "No"})[:3] == ("anime, red, 2D", "anime, blue, 2D", 1.0)


def test_prompt_scheduler_with_deforum_reads_every_schedule_line_whatever_its_alias(ctx):
    """The pack files each converted Deforum line under the scheduler's own alias."""
    schedule = [("P1", '"0": "red",'), ("P2", '"2": "green",')]
    assert CRPromptScheduler().run(ctx, mode="Schedule", current_frame=1, schedule_format="Deforum",
                                   schedule=schedule, schedule_alias="P1", **PROMPT_SCHEDULER)[:3] == (
        "anime, red, 2D", "anime, green, 2D", 0.5)


def test_prompt_scheduler_needs_its_input_for_the_mode(ctx):
    with pytest.raises(ValueError, match="needs a schedule connected"):
        CRPromptScheduler().run(ctx, mode="Schedule", current_frame=0, schedule_format="CR", **PROMPT_SCHEDULER)
    with pytest.raises(ValueError, match="keyframe list is empty"):
        CRPromptScheduler().run(ctx, mode="Keyframe List", current_frame=0, schedule_format="CR", keyframe_list="",
                                **PROMPT_SCHEDULER)


def test_simple_prompt_list_keyframes_feed_the_prompt_scheduler(ctx):
    prompts = CRSimplePromptList().run(ctx, prompt_1="grey hair", prompt_2="", prompt_3="blue hair", prompt_4="",
                                       prompt_5="", simple_prompt_list=["red hair"])[0]
    assert prompts == ["red hair", "grey hair", "blue hair"]
    keyframes = CRSimplePromptListKeyframes().run(ctx, simple_prompt_list=prompts[1:], keyframe_interval=3, loops=2,
                                                  transition_type="Default", transition_speed="Default",
                                                  transition_profile="Default", keyframe_format="Deforum")[0]
    assert keyframes == ('"0": "grey hair",\n "3": "blue hair",\n "6": "grey hair",\n "9": "blue hair"')
    assert CRPromptScheduler().run(ctx, mode="Keyframe List", current_frame=4, schedule_format="Deforum",
                                   keyframe_list=keyframes, **PROMPT_SCHEDULER)[:3] == (
        "anime, blue hair, 2D", "anime, grey hair, 2D", pytest.approx(2 / 3))


def test_lora_stack_collects_the_switched_on_loras_after_a_connected_stack(ctx):
    stack, help_url = CRLoRAStack().run(ctx, "On", "a.safetensors", 0.5, 1.0, "Off", "b.safetensors", 1.0, 1.0,
                                        "On", "None", 1.0, 1.0,
                                        lora_stack=[("None", 1.0, 1.0), ("z.safetensors", 0.2, 0.3)])
    assert stack == [("z.safetensors", 0.2, 0.3), ("a.safetensors", 0.5, 1.0)]
    assert help_url.endswith("#cr-lora-stack")


def test_apply_lora_stack_patches_as_lora_loaders_in_turn(models_dir, tmp_path):
    from nodes.loaders import CheckpointLoaderSimple
    from nodes.lora import LoraLoader
    from nodes.models.builtin import BUILTIN_LORA

    ctx = RunContext(node_id="1", prompt_id="test", paths=Paths(models_dir, tmp_path), interrupt=InterruptHandle(),
                     emit=lambda event, data: None, settings={})
    model, clip, _ = CheckpointLoaderSimple().run(ctx, "tiny-sd15.safetensors")
    ours = CRApplyLoRAStack().run(ctx, model, clip, [(BUILTIN_LORA, 0.7, 0.3), (BUILTIN_LORA, -0.2, 0.5)])
    reference = LoraLoader().run(ctx, *LoraLoader().run(ctx, model, clip, BUILTIN_LORA, 0.7, 0.3),
                                 BUILTIN_LORA, -0.2, 0.5)
    for got, want in zip(ours[:2], reference):
        assert [(p.part, p.strength, p.source) for p in got.patches] == \
            [(p.part, p.strength, p.source) for p in want.patches]
        assert len(got.patches) >= 2
    assert CRApplyLoRAStack().run(ctx, model, clip, [])[:2] == (model, clip)
