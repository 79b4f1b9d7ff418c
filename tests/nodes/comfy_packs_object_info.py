"""The custom packs' declarations of the nodes we rebuild, written out by hand as data.

Read from WASasquatch/was-node-suite-comfyui (WAS_Node_Suite.py, with its default `STRING` text type),
omar92/ComfyUI-QualityOfLifeSuit_Omar92 (src/QualityOfLifeSuit_Omar92.py), cubiq/ComfyUI_essentials
(image.py) and Suzie1/ComfyUI_Comfyroll_CustomNodes (nodes/nodes_lora.py). Each entry mirrors INPUT_TYPES:
input name → (TYPE or list of choices, options) in the pack's order; then the output types and names.
"""

FORCED_TEXT = ("STRING", {"forceInput": True})
O_FACTOR = ("FLOAT", {"default": 1.25, "min": 0.0, "max": 10.0, "step": 0.28125})

PACK_NODES = {
    "Text Multiline": {"required": {"text": ("STRING", {"default": "", "multiline": True, "dynamicPrompts": True})},
                       "output": ["STRING"]},
    "Text String": {"required": {"text": ("STRING", {"default": "", "multiline": False})},
                    "optional": {name: ("STRING", {"default": "", "multiline": False})
                                 for name in ("text_b", "text_c", "text_d")},
                    "output": ["STRING"] * 4, "output_name": ["TEXT", "TEXT_B", "TEXT_C", "TEXT_D"]},
    "Text Concatenate": {"required": {"delimiter": ("STRING", {"default": ", "}),
                                      "clean_whitespace": (["true", "false"], {})},
                         "optional": {name: FORCED_TEXT for name in ("text_a", "text_b", "text_c", "text_d")},
                         "output": ["STRING"]},
    "Text to Conditioning": {"required": {"clip": ("CLIP", {}), "text": FORCED_TEXT}, "output": ["CONDITIONING"]},
    "Text to Console": {"required": {"text": FORCED_TEXT,
                                     "label": ("STRING", {"default": "Text Output", "multiline": False})},
                        "output": ["STRING"], "output_node": True},
    "Text Random Line": {"required": {"text": FORCED_TEXT,
                                      "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF})},
                         "output": ["STRING"]},
    "Text Add Token by Input": {"required": {"token_name": FORCED_TEXT, "token_value": FORCED_TEXT,
                                             "print_current_tokens": (["false", "true"], {})},
                                "output": [], "output_node": True},
    "Text Parse Tokens": {"required": {"text": FORCED_TEXT}, "output": ["STRING"]},
    "Text Find and Replace Input": {
        "required": {"text": FORCED_TEXT, "find": FORCED_TEXT, "replace": FORCED_TEXT},
        "output": ["STRING", "NUMBER", "FLOAT", "INT"],
        "output_name": ["result_text", "replacement_count_number", "replacement_count_float",
                        "replacement_count_int"]},
    "Load Text File": {"required": {"file_path": ("STRING", {"default": "", "multiline": False}),
                                    "dictionary_name": ("STRING", {"default": "[filename]", "multiline": False})},
                       "output": ["STRING", "DICT"]},
    "Latent Upscale by Factor (WAS)": {
        "required": {"samples": ("LATENT", {}), "mode": (["area", "bicubic", "bilinear", "nearest"], {}),
                     "factor": ("FLOAT", {"default": 2.0, "min": 0.1, "max": 8.0, "step": 0.01}),
                     "align": (["true", "false"], {})},
        "output": ["LATENT"]},
    "Image Resize": {
        "required": {"image": ("IMAGE", {}), "mode": (["rescale", "resize"], {}),
                     "supersample": (["true", "false"], {}),
                     "resampling": (["lanczos", "nearest", "bilinear", "bicubic"], {}),
                     "rescale_factor": ("FLOAT", {"default": 2, "min": 0.01, "max": 16.0, "step": 0.01}),
                     "resize_width": ("INT", {"default": 1024, "min": 1, "max": 48000, "step": 1}),
                     "resize_height": ("INT", {"default": 1536, "min": 1, "max": 48000, "step": 1})},
        "output": ["IMAGE"]},
    "Text _O": {"required": {"text": ("STRING", {"multiline": True})}, "output": ["STRING"]},
    "LatentUpscaleFactor _O": {
        "required": {"samples": ("LATENT", {}), "upscale_method": (["nearest-exact", "bilinear", "area"], {}),
                     "WidthFactor": O_FACTOR, "HeightFactor": O_FACTOR, "crop": (["disabled", "center"], {})},
        "output": ["LATENT"]},
    "ImageScaleFactor _O": {
        "required": {"image": ("IMAGE", {}), "upscale_method": (["nearest-exact", "bilinear", "area"], {}),
                     "WidthFactor": O_FACTOR, "HeightFactor": O_FACTOR,
                     "MulOf46": (["enabled", "disabled"], {"default": "enabled"}),
                     "crop": (["disabled", "center"], {})},
        "output": ["IMAGE"]},
    "ImageResize+": {
        "required": {"image": ("IMAGE", {}),
                     "width": ("INT", {"default": 512, "min": 0, "max": 16384, "step": 1}),
                     "height": ("INT", {"default": 512, "min": 0, "max": 16384, "step": 1}),
                     "interpolation": (["nearest", "bilinear", "bicubic", "area", "nearest-exact", "lanczos"], {}),
                     "method": (["stretch", "keep proportion", "fill / crop", "pad"], {}),
                     "condition": (["always", "downscale if bigger", "upscale if smaller", "if bigger area",
                                    "if smaller area"], {}),
                     "multiple_of": ("INT", {"default": 0, "min": 0, "max": 512, "step": 1})},
        "output": ["IMAGE", "INT", "INT"], "output_name": ["IMAGE", "width", "height"]},
    "CR Load LoRA": {
        "required": {"model": ("MODEL", {}), "clip": ("CLIP", {}), "switch": (["On", "Off"], {}),
                     "lora_name": (None, {}),   # "None", then the files in models/loras
                     "strength_model": ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01}),
                     "strength_clip": ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01})},
        "output": ["MODEL", "CLIP", "STRING"], "output_name": ["MODEL", "CLIP", "show_help"]},
}
