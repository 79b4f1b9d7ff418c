"""Automatic1111 `parameters` text: what is read from it, and the ComfyUI graph rebuilt from it."""

from __future__ import annotations

import time

import pytest

from engine.a1111 import (
    MAX_PARAMETERS_CHARS,
    A1111Parameters,
    A1111ParametersError,
    a1111_to_workflow,
    checkpoint_name,
    comfy_sampler,
    parse_a1111_parameters,
    split_settings,
)


def expected_graph(*, ckpt="dreamshaper_8.safetensors", positive="a cat", negative="", width=512, height=768,
                   seed=123, steps=20, cfg=7.0, sampler="euler_ancestral", scheduler="normal", clip_layer=None):
    """The API-format graph a1111_to_workflow builds, written out in full."""
    clip = ["1", 1] if clip_layer is None else ["2", 0]
    graph = {"1": {"inputs": {"ckpt_name": ckpt}, "class_type": "CheckpointLoaderSimple"}}
    if clip_layer is not None:
        graph["2"] = {"inputs": {"clip": ["1", 1], "stop_at_clip_layer": clip_layer}, "class_type": "CLIPSetLastLayer"}
    graph.update({
        "3": {"inputs": {"text": positive, "clip": clip}, "class_type": "CLIPTextEncode",
              "_meta": {"title": "Positive prompt"}},
        "4": {"inputs": {"text": negative, "clip": clip}, "class_type": "CLIPTextEncode",
              "_meta": {"title": "Negative prompt"}},
        "5": {"inputs": {"width": width, "height": height, "batch_size": 1}, "class_type": "EmptyLatentImage"},
        "6": {"inputs": {"model": ["1", 0], "seed": seed, "steps": steps, "cfg": cfg, "sampler_name": sampler,
                         "scheduler": scheduler, "positive": ["3", 0], "negative": ["4", 0],
                         "latent_image": ["5", 0], "denoise": 1.0},
              "class_type": "KSampler"},
        "7": {"inputs": {"samples": ["6", 0], "vae": ["1", 2]}, "class_type": "VAEDecode"},
        "8": {"inputs": {"images": ["7", 0], "filename_prefix": "A1111"}, "class_type": "SaveImage"},
    })
    return graph


def graph_of(text: str) -> dict:
    return a1111_to_workflow(parse_a1111_parameters(text)).to_api()


# --- parsing ---------------------------------------------------------------------------------------

def test_prompt_negative_prompt_and_settings():
    params = parse_a1111_parameters(
        "a cat, sitting\n"
        "Negative prompt: blurry, lowres\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 123, Size: 512x768, "
        "Model hash: 6ce0161689, Model: dreamshaper_8, Denoising strength: 0.4, Clip skip: 2, Version: v1.9.0")

    assert params == A1111Parameters(
        prompt="a cat, sitting", negative_prompt="blurry, lowres", steps=20, sampler="Euler a",
        schedule_type=None, cfg_scale=7.0, seed=123, width=512, height=768, model="dreamshaper_8",
        model_hash="6ce0161689", clip_skip=2, denoising_strength=0.4,
        sampler_name="euler_ancestral", scheduler="normal",
        settings={"Steps": "20", "Sampler": "Euler a", "CFG scale": "7", "Seed": "123", "Size": "512x768",
                  "Model hash": "6ce0161689", "Model": "dreamshaper_8", "Denoising strength": "0.4",
                  "Clip skip": "2", "Version": "v1.9.0"},
        warnings=[])


def test_without_a_negative_prompt_it_is_empty():
    params = parse_a1111_parameters("a cat\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 512x512")

    assert params.prompt == "a cat"
    assert params.negative_prompt == ""


def test_prompts_may_span_several_lines():
    params = parse_a1111_parameters(
        "a cat,\n  on a mat,\nat dawn\n"
        "Negative prompt: blurry,\nugly\n"
        "Steps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 512x512")

    assert params.prompt == "a cat,\non a mat,\nat dawn"  # each line stripped, as A1111 does
    assert params.negative_prompt == "blurry,\nugly"


def test_a_last_line_with_fewer_than_three_settings_is_still_prompt():
    params = parse_a1111_parameters("portrait\nstyle: oil, mood: calm")

    assert params.prompt == "portrait\nstyle: oil, mood: calm"
    assert params.settings == {}
    assert (params.steps, params.seed, params.width, params.height) == (20, 0, 512, 512)


def test_quoted_values_keep_their_commas_and_quotes():
    settings = split_settings(
        'Steps: 20, Lora hashes: "add_detail: 7c6bad76eb54, \\"film\\": 1a2b", Seed: 5, Size: 512x512')

    assert settings == {"Steps": "20", "Lora hashes": 'add_detail: 7c6bad76eb54, "film": 1a2b',
                        "Seed": "5", "Size": "512x512"}


def test_a_quoted_model_name_is_unquoted():
    params = parse_a1111_parameters('x\nSteps: 30, Model: "my, model", Seed: 9, Size: 640x448, Sampler: LMS')

    assert params.model == "my, model"
    assert (params.steps, params.seed, params.width, params.height) == (30, 9, 640, 448)


def test_unreadable_numbers_keep_their_defaults_with_a_warning():
    params = parse_a1111_parameters("x\nSteps: many, Sampler: Euler, CFG scale: 7, Seed: -1, Size: big")

    assert (params.steps, params.seed, params.width, params.height) == (20, 0, 512, 512)
    assert params.warnings == [
        "A1111 setting Steps: 'many' is not a number; using 20",
        "A1111 seed -1 is not a real seed; using 0",
        "A1111 setting Size: 'big' is not WIDTHxHEIGHT; using 512x512",
    ]


def test_large_seeds_stay_exact():
    params = parse_a1111_parameters("x\nSteps: 20, Seed: 18446744073709551615, Size: 512x512")

    assert params.seed == 2**64 - 1


def test_hires_fix_and_lora_tags_are_reported_as_not_reproduced():
    params = parse_a1111_parameters(
        "a cat <lora:add_detail:0.7>\n"
        "Steps: 20, Sampler: Euler, Seed: 1, Size: 512x512, Hires upscale: 2, Hires upscaler: Latent")

    assert params.warnings == [
        "A1111 hires fix is not reproduced: the graph renders at the base size only",
        "the prompt has <lora:...> tags: they stay plain text; add LoraLoader nodes to apply them",
    ]


def test_text_between_settings_that_is_not_a_pair_is_skipped():
    settings = split_settings('junk, -/: x, Steps: 20,, Model hash:  abc , Seed:"7",Size: 1x2: 3')

    assert settings == {"Steps": "20", "Model hash": "abc", "Seed": "7", "Size": "1x2: 3"}


# --- hostile texts: parsed in linear time, and bounded ---------------------------------------------

@pytest.mark.parametrize("last_line", [
    "a" * 60_000,                       # no colon: A1111's regex retried the whole run at every letter
    "a b-c/" * 10_000,                  # the same, with every character a key may hold
    'k: "' + "x, " * 20_000,            # an unterminated quoted value
    "<lora:" * 10_000,                  # a tag that never closes
    " \t" * 30_000,
])
def test_a_long_hostile_line_is_parsed_at_once(last_line):
    started = time.perf_counter()
    params = parse_a1111_parameters("a cat\n" + last_line)

    assert time.perf_counter() - started < 0.5
    assert params.prompt.startswith("a cat")


def test_a_text_over_the_limit_is_refused_not_parsed():
    parse_a1111_parameters("a" * MAX_PARAMETERS_CHARS)  # at the limit: read

    with pytest.raises(A1111ParametersError, match=f"at most {MAX_PARAMETERS_CHARS}"):
        parse_a1111_parameters("a" * (MAX_PARAMETERS_CHARS + 1))


# --- sampler and scheduler names -------------------------------------------------------------------

@pytest.mark.parametrize("sampler, schedule_type, expected", [
    ("Euler", None, ("euler", "normal")),
    ("Euler a", None, ("euler_ancestral", "normal")),
    ("Heun", None, ("heun", "normal")),
    ("DPM2", None, ("dpm_2", "normal")),
    ("DPM2 a", None, ("dpm_2_ancestral", "normal")),
    ("LMS", None, ("lms", "normal")),
    ("DPM++ 2M", None, ("dpmpp_2m", "normal")),
    ("DPM++ SDE", None, ("dpmpp_sde", "normal")),
    ("DPM++ 2M SDE", None, ("dpmpp_2m_sde", "normal")),
    ("DPM++ 3M SDE", None, ("dpmpp_3m_sde", "normal")),
    ("DDIM", None, ("ddim", "normal")),
    ("UniPC", None, ("uni_pc", "normal")),
    ("LCM", None, ("lcm", "normal")),
    ("DDPM", None, ("ddpm", "normal")),
    # old style: the schedule is a suffix of the sampler's name
    ("DPM++ 2M Karras", None, ("dpmpp_2m", "karras")),
    ("DPM++ SDE Karras", None, ("dpmpp_sde", "karras")),
    ("DPM2 a Karras", None, ("dpm_2_ancestral", "karras")),
    ("DPM++ 2M SDE Exponential", None, ("dpmpp_2m_sde", "exponential")),
    # new style: a separate `Schedule type:`
    ("DPM++ 2M", "Karras", ("dpmpp_2m", "karras")),
    ("DPM++ 2M SDE", "Exponential", ("dpmpp_2m_sde", "exponential")),
    ("Euler", "SGM Uniform", ("euler", "sgm_uniform")),
    ("Euler", "Simple", ("euler", "simple")),
    ("Euler", "Beta", ("euler", "beta")),
    ("DDIM", "DDIM", ("ddim", "ddim_uniform")),
    ("Euler a", "Automatic", ("euler_ancestral", "normal")),
    ("Euler a", "Uniform", ("euler_ancestral", "normal")),
])
def test_a1111_samplers_map_to_comfyui_names(sampler, schedule_type, expected):
    assert comfy_sampler(sampler, schedule_type) == (*expected, [])


def test_an_unknown_sampler_becomes_euler_with_a_warning():
    assert comfy_sampler("Restart", None) == (
        "euler", "normal", ["unknown A1111 sampler 'Restart': using euler instead"])


def test_an_unknown_schedule_type_becomes_normal_with_a_warning():
    assert comfy_sampler("Euler", "Align Your Steps") == (
        "euler", "normal", ["unknown A1111 schedule type 'Align Your Steps': using normal instead"])


# --- checkpoint names ------------------------------------------------------------------------------

@pytest.mark.parametrize("model, ckpt_name", [
    ("dreamshaper_8", "dreamshaper_8.safetensors"),
    ("sd_xl_base_1.0", "sd_xl_base_1.0.safetensors"),  # a dot in a version is not an extension
    ("realisticVision.safetensors", "realisticVision.safetensors"),
    ("v1-5-pruned.ckpt", "v1-5-pruned.ckpt"),
    (None, "v1-5-pruned-emaonly.safetensors"),
    ("", "v1-5-pruned-emaonly.safetensors"),
])
def test_checkpoint_name_adds_safetensors_when_there_is_no_extension(model, ckpt_name):
    assert checkpoint_name(model) == ckpt_name


# --- the rebuilt graph -----------------------------------------------------------------------------

def test_a_simple_text_gives_the_standard_text_to_image_graph():
    text = ("a cat\nNegative prompt: blurry\n"
            "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 123, Size: 512x768, Model: dreamshaper_8")

    assert graph_of(text) == expected_graph(negative="blurry")


def test_clip_skip_2_adds_clip_set_last_layer_feeding_both_prompts():
    text = ("a cat\n"
            "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 123, Size: 512x768, Model: dreamshaper_8, Clip skip: 2")

    assert graph_of(text) == expected_graph(clip_layer=-2)


def test_clip_skip_1_is_the_default_and_adds_no_node():
    text = "a cat\nSteps: 20, Sampler: Euler a, Seed: 123, Size: 512x768, Model: dreamshaper_8, Clip skip: 1"

    assert graph_of(text) == expected_graph()


def test_old_style_sampler_with_karras_suffix_and_no_model():
    text = ("portrait,\nstudio light\nNegative prompt: lowres\n"
            "Steps: 30, Sampler: DPM++ 2M Karras, CFG scale: 5.5, Seed: 42, Size: 832x1216")

    assert graph_of(text) == expected_graph(
        ckpt="v1-5-pruned-emaonly.safetensors", positive="portrait,\nstudio light", negative="lowres",
        width=832, height=1216, seed=42, steps=30, cfg=5.5, sampler="dpmpp_2m", scheduler="karras")


def test_new_style_schedule_type():
    text = ("portrait\n"
            "Steps: 25, Sampler: DPM++ 2M SDE, Schedule type: Exponential, CFG scale: 4, Seed: 7, "
            "Size: 1024x1024, Model: juggernautXL.safetensors, Denoising strength: 0.3")

    assert graph_of(text) == expected_graph(
        ckpt="juggernautXL.safetensors", positive="portrait", width=1024, height=1024, seed=7, steps=25,
        cfg=4.0, sampler="dpmpp_2m_sde", scheduler="exponential")  # denoise stays 1.0: text-to-image


def test_an_unknown_sampler_still_gives_a_runnable_graph():
    params = parse_a1111_parameters("a cat\nSteps: 20, Sampler: Restart, CFG scale: 7, Seed: 123, Size: 512x768, "
                                    "Model: dreamshaper_8")

    assert params.warnings == ["unknown A1111 sampler 'Restart': using euler instead"]
    assert a1111_to_workflow(params).to_api() == expected_graph(sampler="euler")
