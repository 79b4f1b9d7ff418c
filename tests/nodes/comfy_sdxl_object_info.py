"""ComfyUI's declarations of the SDXL prompt nodes and the extra checkpoint loaders, written out by hand.

Read from comfyanonymous/ComfyUI: comfy_extras/nodes_clip_sdxl.py (CLIPTextEncodeSDXL,
CLIPTextEncodeSDXLRefiner; `clip` first in the base node, last in the refiner's) and nodes.py
(CheckpointLoader, deprecated, and DiffusersLoader, with NODE_DISPLAY_NAME_MAPPINGS). Inputs in
ComfyUI's order as name → (TYPE, options); `FILES` stands for a combo of files found on disk.
"""

MAX_RESOLUTION = 16384
FILES = "FILES"  # a combo whose choices are the files (or folders) of a models folder


def _size(default=1024):
    return ("INT", {"default": default, "min": 0, "max": MAX_RESOLUTION})


PROMPT = ("STRING", {"multiline": True, "dynamicPrompts": True})
LOADER_OUTPUTS = ["MODEL", "CLIP", "VAE"]

COMFY_SDXL_NODES = {
    "CLIPTextEncodeSDXL": {
        "required": {"clip": ("CLIP",), "width": _size(), "height": _size(), "crop_w": _size(0), "crop_h": _size(0),
                     "target_width": _size(), "target_height": _size(), "text_g": PROMPT, "text_l": PROMPT},
        "output": ["CONDITIONING"], "category": "advanced/conditioning", "display_name": "CLIPTextEncodeSDXL"},
    "CLIPTextEncodeSDXLRefiner": {
        "required": {"ascore": ("FLOAT", {"default": 6.0, "min": 0.0, "max": 1000.0, "step": 0.01}),
                     "width": _size(), "height": _size(), "text": PROMPT, "clip": ("CLIP",)},
        "output": ["CONDITIONING"], "category": "advanced/conditioning",
        "display_name": "CLIPTextEncodeSDXLRefiner"},
    "CheckpointLoader": {
        "required": {"config_name": (FILES,), "ckpt_name": (FILES,)},
        "output": LOADER_OUTPUTS, "category": "advanced/loaders",
        "display_name": "Load Checkpoint With Config (DEPRECATED)", "deprecated": True},
    "DiffusersLoader": {
        "required": {"model_path": (FILES,)},
        "output": LOADER_OUTPUTS, "category": "advanced/loaders/deprecated", "display_name": "DiffusersLoader"},
}
