"""ComfyUI's declarations of its CLIP vision, unCLIP, style model and conditioning toolbox nodes,
written down by hand from its source (comfyanonymous/ComfyUI nodes.py).

Each node: its inputs in order as (name, type, options), where a combo's type is its list of
choices and options holds default, min, max and step as ComfyUI gives them; its outputs
(type, name); its category and display name. Model-file combos are listed as "FILES" (their
choices are whatever the folder holds). ConditioningAverage's display name is its class name:
ComfyUI's display-name table spells that key with a trailing space.
"""

CONDITIONING = ("CONDITIONING", {})
STRENGTH = ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01})

COMFY_VISION_NODES = {
    "CLIPVisionLoader": {
        "required": [("clip_name", "FILES", {})],
        "outputs": [("CLIP_VISION", "CLIP_VISION")], "category": "loaders", "display_name": "Load CLIP Vision",
    },
    "CLIPVisionEncode": {
        "required": [("clip_vision", "CLIP_VISION", {}), ("image", "IMAGE", {}), ("crop", ["center", "none"], {})],
        "outputs": [("CLIP_VISION_OUTPUT", "CLIP_VISION_OUTPUT")], "category": "conditioning",
        "display_name": "CLIP Vision Encode",
    },
    "unCLIPCheckpointLoader": {
        "required": [("ckpt_name", "FILES", {})],
        "outputs": [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE"), ("CLIP_VISION", "CLIP_VISION")],
        "category": "loaders", "display_name": "unCLIPCheckpointLoader",
    },
    "unCLIPConditioning": {
        "required": [("conditioning", *CONDITIONING), ("clip_vision_output", "CLIP_VISION_OUTPUT", {}),
                     ("strength", "FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01}),
                     ("noise_augmentation", "FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01})],
        "outputs": [("CONDITIONING", "CONDITIONING")], "category": "conditioning",
        "display_name": "unCLIPConditioning",
    },
    "StyleModelLoader": {
        "required": [("style_model_name", "FILES", {})],
        "outputs": [("STYLE_MODEL", "STYLE_MODEL")], "category": "loaders", "display_name": "Load Style Model",
    },
    "StyleModelApply": {
        "required": [("conditioning", *CONDITIONING), ("style_model", "STYLE_MODEL", {}),
                     ("clip_vision_output", "CLIP_VISION_OUTPUT", {}),
                     ("strength", "FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.001}),
                     ("strength_type", ["multiply", "attn_bias"], {})],
        "outputs": [("CONDITIONING", "CONDITIONING")], "category": "conditioning/style_model",
        "display_name": "Apply Style Model",
    },
    "ConditioningAverage": {
        "required": [("conditioning_to", *CONDITIONING), ("conditioning_from", *CONDITIONING),
                     ("conditioning_to_strength", "FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01})],
        "outputs": [("CONDITIONING", "CONDITIONING")], "category": "conditioning",
        "display_name": "ConditioningAverage",
    },
    "ConditioningConcat": {
        "required": [("conditioning_to", *CONDITIONING), ("conditioning_from", *CONDITIONING)],
        "outputs": [("CONDITIONING", "CONDITIONING")], "category": "conditioning",
        "display_name": "Conditioning (Concat)",
    },
    "ConditioningSetAreaPercentage": {
        "required": [("conditioning", *CONDITIONING),
                     ("width", "FLOAT", {"default": 1.0, "min": 0, "max": 1.0, "step": 0.01}),
                     ("height", "FLOAT", {"default": 1.0, "min": 0, "max": 1.0, "step": 0.01}),
                     ("x", "FLOAT", {"default": 0, "min": 0, "max": 1.0, "step": 0.01}),
                     ("y", "FLOAT", {"default": 0, "min": 0, "max": 1.0, "step": 0.01}),
                     ("strength", *STRENGTH)],
        "outputs": [("CONDITIONING", "CONDITIONING")], "category": "conditioning",
        "display_name": "Conditioning (Set Area with Percentage)",
    },
    "ConditioningSetAreaStrength": {
        "required": [("conditioning", *CONDITIONING), ("strength", *STRENGTH)],
        "outputs": [("CONDITIONING", "CONDITIONING")], "category": "conditioning",
        "display_name": "ConditioningSetAreaStrength",
    },
    "ConditioningSetMask": {
        "required": [("conditioning", *CONDITIONING), ("mask", "MASK", {}), ("strength", *STRENGTH),
                     ("set_cond_area", ["default", "mask bounds"], {})],
        "outputs": [("CONDITIONING", "CONDITIONING")], "category": "conditioning",
        "display_name": "Conditioning (Set Mask)",
    },
    "ConditioningSetTimestepRange": {
        "required": [("conditioning", *CONDITIONING),
                     ("start", "FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.001}),
                     ("end", "FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.001})],
        "outputs": [("CONDITIONING", "CONDITIONING")], "category": "advanced/conditioning",
        "display_name": "ConditioningSetTimestepRange",
    },
}
