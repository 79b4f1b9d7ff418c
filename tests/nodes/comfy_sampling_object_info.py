"""ComfyUI's declarations of the custom-sampling nodes, written out by hand as data.

Read from comfyanonymous/ComfyUI: comfy_extras/nodes_custom_sampler.py, nodes_align_your_steps.py,
nodes_advanced_samplers.py (SamplerLCMUpscale), nodes_model_advanced.py (ModelSamplingDiscrete, RescaleCFG)
and nodes_cfg.py (CFGZeroStar). Same shape as comfy_object_info_table: input name → (TYPE, options) in
ComfyUI's order, outputs (with their names), category, display name. Left out on purpose:
- the `advanced: True` display hint of ComfyUI's newest schema (its editor folds those widgets away);
- ModelSamplingDiscrete's `img_to_img` (Lotus depth/normal models, not an SD image model), so its
  choices are the four that apply to SD models;
- the sampler and scheduler names, which are KSampler's own (`KSAMPLER_CHOICES`: compared with KSampler's).
"""

KSAMPLER_CHOICES = "the choices of KSampler's input of the same name"


def _float(default, lo, hi, step, **extra):
    return ("FLOAT", {"default": default, "min": lo, "max": hi, "step": step, **extra})


def _int(default, lo, hi, **extra):
    return ("INT", {"default": default, "min": lo, "max": hi, **extra})


def _loose(default, lo=0.0, hi=100.0):
    """A float ComfyUI never rounds (`round: False`)."""
    return _float(default, lo, hi, 0.01, round=False)


def _node(required, output, category, display_name, output_name=None):
    entry = {"required": required, "output": output, "category": category, "display_name": display_name}
    entry["output_name"] = output_name or list(output)
    return entry


MODEL, CONDITIONING, LATENT = ("MODEL",), ("CONDITIONING",), ("LATENT",)
SIGMAS, SAMPLER = ("SIGMAS",), ("SAMPLER",)
SEED = _int(0, 0, 0xFFFFFFFFFFFFFFFF, control_after_generate=True)
CFG = _float(8.0, 0.0, 100.0, 0.1, round=0.01)
DENOISE = _float(1.0, 0.0, 1.0, 0.01)
STEPS = _int(20, 1, 10000)
SIGMA_RANGE = {"sigma_max": _float(14.614642, 0.0, 5000.0, 0.01, round=False),
               "sigma_min": _float(0.0291675, 0.0, 5000.0, 0.01, round=False)}
NOISE_DEVICE = (["gpu", "cpu"], {})
SCHEDULERS, SAMPLERS, SIGMA_OPS = "sampling/schedulers", "sampling/samplers", "sampling/sigmas"
GUIDERS, CUSTOM = "sampling/guiders", "sampling/custom_sampling"
TWO_LATENTS = dict(output=["LATENT", "LATENT"], output_name=["output", "denoised_output"])
TWO_SIGMAS = dict(output=["SIGMAS", "SIGMAS"], output_name=["high_sigmas", "low_sigmas"])

COMFY_SAMPLING_NODES = {
    "BasicScheduler": _node({"model": MODEL, "scheduler": (KSAMPLER_CHOICES, {}), "steps": STEPS,
                             "denoise": DENOISE}, ["SIGMAS"], SCHEDULERS, "BasicScheduler"),
    "KarrasScheduler": _node({"steps": STEPS, **SIGMA_RANGE, "rho": _loose(7.0)}, ["SIGMAS"], SCHEDULERS,
                             "KarrasScheduler"),
    "ExponentialScheduler": _node({"steps": STEPS, **SIGMA_RANGE}, ["SIGMAS"], SCHEDULERS, "ExponentialScheduler"),
    "PolyexponentialScheduler": _node({"steps": STEPS, **SIGMA_RANGE, "rho": _loose(1.0)}, ["SIGMAS"], SCHEDULERS,
                                      "PolyexponentialScheduler"),
    "SDTurboScheduler": _node({"model": MODEL, "steps": _int(1, 1, 10), "denoise": _float(1.0, 0, 1.0, 0.01)},
                              ["SIGMAS"], SCHEDULERS, "SDTurboScheduler"),
    "BetaSamplingScheduler": _node({"model": MODEL, "steps": STEPS, "alpha": _loose(0.6, hi=50.0),
                                    "beta": _loose(0.6, hi=50.0)}, ["SIGMAS"], SCHEDULERS, "BetaSamplingScheduler"),
    "AlignYourStepsScheduler": _node({"model_type": (["SD1", "SDXL", "SVD"], {}), "steps": _int(10, 1, 10000),
                                      "denoise": DENOISE}, ["SIGMAS"], "sampling/custom_sampling/schedulers",
                                     "AlignYourStepsScheduler"),
    "SplitSigmas": _node({"sigmas": SIGMAS, "step": _int(0, 0, 10000)}, category=SIGMA_OPS,
                         display_name="SplitSigmas", **TWO_SIGMAS),
    "SplitSigmasDenoise": _node({"sigmas": SIGMAS, "denoise": DENOISE}, category=SIGMA_OPS,
                                display_name="SplitSigmasDenoise", **TWO_SIGMAS),
    "FlipSigmas": _node({"sigmas": SIGMAS}, ["SIGMAS"], SIGMA_OPS, "FlipSigmas"),
    "KSamplerSelect": _node({"sampler_name": (KSAMPLER_CHOICES, {})}, ["SAMPLER"], SAMPLERS, "KSamplerSelect"),
    "SamplerEulerAncestral": _node({"eta": _loose(1.0), "s_noise": _loose(1.0)}, ["SAMPLER"], SAMPLERS,
                                   "SamplerEulerAncestral"),
    "SamplerLMS": _node({"order": _int(4, 1, 100)}, ["SAMPLER"], SAMPLERS, "SamplerLMS"),
    "SamplerDPMPP_3M_SDE": _node({"eta": _loose(1.0), "s_noise": _loose(1.0), "noise_device": NOISE_DEVICE},
                                 ["SAMPLER"], SAMPLERS, "SamplerDPMPP_3M_SDE"),
    "SamplerDPMPP_2M_SDE": _node({"solver_type": (["midpoint", "heun"], {}), "eta": _loose(1.0),
                                  "s_noise": _loose(1.0), "noise_device": NOISE_DEVICE},
                                 ["SAMPLER"], SAMPLERS, "SamplerDPMPP_2M_SDE"),
    "SamplerDPMPP_SDE": _node({"eta": _loose(1.0), "s_noise": _loose(1.0), "r": _loose(0.5),
                               "noise_device": NOISE_DEVICE}, ["SAMPLER"], SAMPLERS, "SamplerDPMPP_SDE"),
    "SamplerLCMUpscale": _node({"scale_ratio": _float(1.0, 0.1, 20.0, 0.01), "scale_steps": _int(-1, -1, 1000, step=1),
                                "upscale_method": (["bislerp", "nearest-exact", "bilinear", "area", "bicubic"], {})},
                               ["SAMPLER"], "sampling/custom_sampling/samplers", "SamplerLCMUpscale"),
    "RandomNoise": _node({"noise_seed": SEED}, ["NOISE"], "sampling/noise", "RandomNoise"),
    "DisableNoise": _node({}, ["NOISE"], "sampling/noise", "DisableNoise"),
    "BasicGuider": _node({"model": MODEL, "conditioning": CONDITIONING}, ["GUIDER"], GUIDERS, "Basic Guider"),
    "CFGGuider": _node({"model": MODEL, "positive": CONDITIONING, "negative": CONDITIONING, "cfg": CFG},
                       ["GUIDER"], GUIDERS, "CFG Guider"),
    "DualCFGGuider": _node({"model": MODEL, "cond1": CONDITIONING, "cond2": CONDITIONING, "negative": CONDITIONING,
                            "cfg_conds": CFG, "cfg_cond2_negative": CFG, "style": (["regular", "nested"], {})},
                           ["GUIDER"], GUIDERS, "Dual CFG Guider"),
    "SamplerCustom": _node({"model": MODEL, "add_noise": ("BOOLEAN", {"default": True}), "noise_seed": SEED,
                            "cfg": CFG, "positive": CONDITIONING, "negative": CONDITIONING, "sampler": SAMPLER,
                            "sigmas": SIGMAS, "latent_image": LATENT}, category=CUSTOM, display_name="SamplerCustom",
                           **TWO_LATENTS),
    "SamplerCustomAdvanced": _node({"noise": ("NOISE",), "guider": ("GUIDER",), "sampler": SAMPLER, "sigmas": SIGMAS,
                                    "latent_image": LATENT}, category=CUSTOM, display_name="SamplerCustomAdvanced",
                                   **TWO_LATENTS),
    "ModelSamplingDiscrete": _node({"model": MODEL, "sampling": (["eps", "v_prediction", "lcm", "x0"], {}),
                                    "zsnr": ("BOOLEAN", {"default": False})}, ["MODEL"], "advanced/model",
                                   "ModelSamplingDiscrete"),
    "RescaleCFG": _node({"model": MODEL, "multiplier": _float(0.7, 0.0, 1.0, 0.01)}, ["MODEL"], "advanced/model",
                        "RescaleCFG"),
    "CFGZeroStar": _node({"model": MODEL}, ["MODEL"], "advanced/guidance", "CFGZeroStar",
                         output_name=["patched_model"]),
}
