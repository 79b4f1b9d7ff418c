"""ComfyUI's declarations of the model patch and merging nodes, written out by hand as data.

Read from comfyanonymous/ComfyUI: comfy_extras/nodes_freelunch.py (FreeU, FreeU_V2), nodes_hypertile.py,
nodes_tomesd.py, nodes_pag.py, nodes_sag.py, nodes_hypernetwork.py and nodes_model_merging.py (with its
display-name map), and nodes.py (GLIGEN). Same shape as comfy_object_info_table: input name → (TYPE,
options) in ComfyUI's order, outputs, category, display name.
"""


def _float(default, lo, hi, step, **extra):
    return ("FLOAT", {"default": default, "min": lo, "max": hi, "step": step, **extra})


def _int(default, lo, hi):
    return ("INT", {"default": default, "min": lo, "max": hi})


MODEL = ("MODEL",)
PATCHES = "model_patches/unet"
MERGING = "advanced/model_merging"
RATIO = _float(1.0, 0.0, 1.0, 0.01)


def _freeu(b1, b2):
    return {"required": {"model": MODEL, "b1": _float(b1, 0.0, 10.0, 0.01), "b2": _float(b2, 0.0, 10.0, 0.01),
                         "s1": _float(0.9, 0.0, 10.0, 0.01), "s2": _float(0.2, 0.0, 10.0, 0.01)},
            "output": ["MODEL"], "category": PATCHES}


COMFY_PATCH_NODES = {
    "FreeU": {**_freeu(1.1, 1.2), "display_name": "FreeU"},
    "FreeU_V2": {**_freeu(1.3, 1.4), "display_name": "FreeU_V2"},
    "HyperTile": {
        "required": {"model": MODEL, "tile_size": _int(256, 1, 2048), "swap_size": _int(2, 1, 128),
                     "max_depth": _int(0, 0, 10), "scale_depth": ("BOOLEAN", {"default": False})},
        "output": ["MODEL"], "category": PATCHES, "display_name": "HyperTile"},
    "TomePatchModel": {
        "required": {"model": MODEL, "ratio": _float(0.3, 0.0, 1.0, 0.01)},
        "output": ["MODEL"], "category": PATCHES, "display_name": "TomePatchModel"},
    "PerturbedAttentionGuidance": {
        "required": {"model": MODEL, "scale": _float(3.0, 0.0, 100.0, 0.01, round=0.01)},
        "output": ["MODEL"], "category": PATCHES, "display_name": "PerturbedAttentionGuidance"},
    "ModelMergeSimple": {
        "required": {"model1": MODEL, "model2": MODEL, "ratio": RATIO},
        "output": ["MODEL"], "category": MERGING, "display_name": "ModelMergeSimple"},
    "ModelMergeBlocks": {
        "required": {"model1": MODEL, "model2": MODEL, "input": RATIO, "middle": RATIO, "out": RATIO},
        "output": ["MODEL"], "category": MERGING, "display_name": "ModelMergeBlocks"},
    "ModelMergeSubtract": {
        "required": {"model1": MODEL, "model2": MODEL, "multiplier": _float(1.0, -10.0, 10.0, 0.01)},
        "output": ["MODEL"], "category": MERGING, "display_name": "ModelMergeSubtract"},
    "ModelMergeAdd": {
        "required": {"model1": MODEL, "model2": MODEL},
        "output": ["MODEL"], "category": MERGING, "display_name": "ModelMergeAdd"},
    "CLIPMergeSimple": {
        "required": {"clip1": ("CLIP",), "clip2": ("CLIP",), "ratio": RATIO},
        "output": ["CLIP"], "category": MERGING, "display_name": "CLIPMergeSimple"},
    "CheckpointSave": {
        "required": {"model": MODEL, "clip": ("CLIP",), "vae": ("VAE",),
                     "filename_prefix": ("STRING", {"default": "checkpoints/ComfyUI"})},
        "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        "output": [], "category": MERGING, "display_name": "Save Checkpoint", "output_node": True},
}

COMFY_PATCH_NODES.update({
    "SelfAttentionGuidance": {
        "required": {"model": MODEL, "scale": _float(0.5, -2.0, 5.0, 0.01), "blur_sigma": _float(2.0, 0.0, 10.0, 0.1)},
        "output": ["MODEL"], "category": "_for_testing", "display_name": "Self-Attention Guidance"},
    "HypernetworkLoader": {
        "required": {"model": MODEL, "hypernetwork_name": ([],), "strength": _float(1.0, -10.0, 10.0, 0.01)},
        "output": ["MODEL"], "category": "loaders", "display_name": "HypernetworkLoader"},
})

# nodes.py: GLIGENLoader and GLIGENTextBoxApply (no display names of their own; MAX_RESOLUTION 16384).
COMFY_GLIGEN_NODES = {
    "GLIGENLoader": {
        "required": {"gligen_name": ([],)}, "output": ["GLIGEN"], "category": "loaders",
        "display_name": "GLIGENLoader"},
    "GLIGENTextBoxApply": {
        "required": {"conditioning_to": ("CONDITIONING",), "clip": ("CLIP",), "gligen_textbox_model": ("GLIGEN",),
                     "text": ("STRING", {"multiline": True, "dynamicPrompts": True}),
                     "width": ("INT", {"default": 64, "min": 8, "max": 16384, "step": 8}),
                     "height": ("INT", {"default": 64, "min": 8, "max": 16384, "step": 8}),
                     "x": ("INT", {"default": 0, "min": 0, "max": 16384, "step": 8}),
                     "y": ("INT", {"default": 0, "min": 0, "max": 16384, "step": 8})},
        "output": ["CONDITIONING"], "category": "conditioning/gligen", "display_name": "GLIGENTextBoxApply"},
}
