"""The sampling and prompt packs' declarations of the nodes we rebuild, written out by hand as data.

Read from ltdrdata/ComfyUI-Inspire-Pack (inspire/a1111_compat.py, inspire/image_util.py),
ltdrdata/ComfyUI-Impact-Pack (ImpactWildcardProcessor), BlenderNeko/ComfyUI_TiledKSampler (nodes.py) and
ssitu/ComfyUI_UltimateSDUpscale (usdu_nodes.py). Same shape as comfy_packs_object_info: input name →
(TYPE or list of choices, options) in the pack's order; None as the type skips a list read from ComfyUI
(its samplers and schedulers).
"""

SEED = ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF})
STEPS = ("INT", {"default": 20, "min": 1, "max": 10000})
CFG = ("FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0})
DENOISE = ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01})
SAMPLERS = (None, {})
NOISE_MODE = (["GPU(=A1111)", "CPU"], {})
BATCH_SEED_MODE = (["incremental", "comfy", "variation str inc:0.01", "variation str inc:0.05"], {})
VARIATION_STRENGTH = ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01})
TILE_SIZE = ("INT", {"default": 512, "min": 256, "max": 8192, "step": 64})
STRATEGY = (["random", "random strict", "padded", "simple"], {})

USDU_TAIL = {
    "mode_type": (["Linear", "Chess", "None"], {}),
    "tile_width": ("INT", {"default": 512, "min": 64, "max": 8192, "step": 8}),
    "tile_height": ("INT", {"default": 512, "min": 64, "max": 8192, "step": 8}),
    "mask_blur": ("INT", {"default": 8, "min": 0, "max": 64, "step": 1}),
    "tile_padding": ("INT", {"default": 32, "min": 0, "max": 8192, "step": 8}),
    "seam_fix_mode": (["None", "Band Pass", "Half Tile", "Half Tile + Intersections"], {}),
    "seam_fix_denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}),
    "seam_fix_width": ("INT", {"default": 64, "min": 0, "max": 8192, "step": 8}),
    "seam_fix_mask_blur": ("INT", {"default": 8, "min": 0, "max": 64, "step": 1}),
    "seam_fix_padding": ("INT", {"default": 16, "min": 0, "max": 8192, "step": 8}),
    "force_uniform_tiles": ("BOOLEAN", {"default": True}),
    "tiled_decode": ("BOOLEAN", {"default": False}),
    "batch_size": ("INT", {"default": 1, "min": 1, "max": 16, "step": 1}),
}
USDU_SAMPLING = {
    "seed": SEED, "steps": ("INT", {"default": 20, "min": 1, "max": 10000, "step": 1}), "cfg": CFG,
    "sampler_name": SAMPLERS, "scheduler": SAMPLERS,
    "denoise": ("FLOAT", {"default": 0.2, "min": 0.0, "max": 1.0, "step": 0.01}),
}

SAMPLING_PACK_NODES = {
    "KSampler //Inspire": {
        "required": {"model": ("MODEL", {}), "seed": SEED, "steps": STEPS, "cfg": CFG, "sampler_name": SAMPLERS,
                     "scheduler": SAMPLERS, "positive": ("CONDITIONING", {}), "negative": ("CONDITIONING", {}),
                     "latent_image": ("LATENT", {}), "denoise": DENOISE, "noise_mode": NOISE_MODE,
                     "batch_seed_mode": BATCH_SEED_MODE, "variation_seed": SEED,
                     "variation_strength": VARIATION_STRENGTH},
        "optional": {"variation_method": (["linear", "slerp"], {}), "scheduler_func_opt": ("SCHEDULER_FUNC", {}),
                     "internal_seed": SEED},
        "output": ["LATENT"]},
    "KSamplerAdvanced //Inspire": {
        "required": {"model": ("MODEL", {}),
                     "add_noise": ("BOOLEAN", {"default": True, "label_on": "enable", "label_off": "disable"}),
                     "noise_seed": SEED, "steps": STEPS,
                     "cfg": ("FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.5, "round": 0.01}),
                     "sampler_name": SAMPLERS, "scheduler": SAMPLERS, "positive": ("CONDITIONING", {}),
                     "negative": ("CONDITIONING", {}), "latent_image": ("LATENT", {}),
                     "start_at_step": ("INT", {"default": 0, "min": 0, "max": 10000}),
                     "end_at_step": ("INT", {"default": 10000, "min": 0, "max": 10000}),
                     "noise_mode": NOISE_MODE,
                     "return_with_leftover_noise": ("BOOLEAN", {"default": False, "label_on": "enable",
                                                                "label_off": "disable"}),
                     "batch_seed_mode": BATCH_SEED_MODE, "variation_seed": SEED,
                     "variation_strength": VARIATION_STRENGTH},
        "optional": {"variation_method": (["linear", "slerp"], {}), "noise_opt": ("NOISE_IMAGE", {}),
                     "scheduler_func_opt": ("SCHEDULER_FUNC", {}), "internal_seed": SEED},
        "output": ["LATENT"]},
    "LoadImagesFromDir //Inspire": {
        "required": {"directory": ("STRING", {"default": ""})},
        "optional": {"image_load_cap": ("INT", {"default": 0, "min": 0, "step": 1}),
                     "start_index": ("INT", {"default": 0, "min": -1, "max": 0xFFFFFFFFFFFFFFFF, "step": 1}),
                     "load_always": ("BOOLEAN", {"default": False, "label_on": "enabled", "label_off": "disabled"}),
                     "sort_criteria": (["filename", "newest_first", "oldest_first"], {})},
        "output": ["IMAGE", "MASK", "INT"]},
    "ImpactWildcardProcessor": {
        "required": {"wildcard_text": ("STRING", {"default": "", "multiline": True}),
                     "populated_text": ("STRING", {"default": "", "multiline": True}),
                     "mode": ("BOOLEAN", {"default": True, "label_on": "Populate", "label_off": "Fixed"}),
                     "seed": SEED, "Select to add Wildcard": (None, {})},
        "output": ["STRING"]},
    "BNK_TiledKSampler": {
        "required": {"model": ("MODEL", {}), "seed": SEED, "tile_width": TILE_SIZE, "tile_height": TILE_SIZE,
                     "tiling_strategy": STRATEGY, "steps": STEPS, "cfg": CFG, "sampler_name": SAMPLERS,
                     "scheduler": SAMPLERS, "positive": ("CONDITIONING", {}), "negative": ("CONDITIONING", {}),
                     "latent_image": ("LATENT", {}), "denoise": DENOISE},
        "output": ["LATENT"]},
    "BNK_TiledKSamplerAdvanced": {
        "required": {"model": ("MODEL", {}), "add_noise": (["enable", "disable"], {}), "noise_seed": SEED,
                     "tile_width": TILE_SIZE, "tile_height": TILE_SIZE, "tiling_strategy": STRATEGY,
                     "steps": STEPS, "cfg": CFG, "sampler_name": SAMPLERS, "scheduler": SAMPLERS,
                     "positive": ("CONDITIONING", {}), "negative": ("CONDITIONING", {}),
                     "latent_image": ("LATENT", {}),
                     "start_at_step": ("INT", {"default": 0, "min": 0, "max": 10000}),
                     "end_at_step": ("INT", {"default": 10000, "min": 0, "max": 10000}),
                     "return_with_leftover_noise": (["disable", "enable"], {}),
                     "preview": (["disable", "enable"], {})},
        "output": ["LATENT"]},
    "UltimateSDUpscale": {
        "required": {"image": ("IMAGE", {}), "model": ("MODEL", {}), "positive": ("CONDITIONING", {}),
                     "negative": ("CONDITIONING", {}), "vae": ("VAE", {}),
                     "upscale_by": ("FLOAT", {"default": 2, "min": 0.05, "max": 4, "step": 0.05}),
                     **USDU_SAMPLING, "upscale_model": ("UPSCALE_MODEL", {}), **USDU_TAIL},
        "output": ["IMAGE"]},
    "UltimateSDUpscaleNoUpscale": {
        "required": {"upscaled_image": ("IMAGE", {}), "model": ("MODEL", {}), "positive": ("CONDITIONING", {}),
                     "negative": ("CONDITIONING", {}), "vae": ("VAE", {}), **USDU_SAMPLING, **USDU_TAIL},
        "output": ["IMAGE"]},
}
