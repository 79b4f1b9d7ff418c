"""cubiq/ComfyUI_IPAdapter_plus's declarations of the nodes we port, written down by hand from its source.

Read from IPAdapterPlus.py (IPAdapterUnifiedLoader, IPAdapterModelLoader, IPAdapter (IPAdapterSimple),
IPAdapterAdvanced, IPAdapterEncoder, IPAdapterEmbeds, PrepImageForClipVision and the mappings' display
names) at its current head, and IPAdapterApply from the pack's first version (its old name, still in
older workflows). Same shape as comfy_controlnet_object_info.py: inputs as (name, type, options), a
combo's type its choices (None: model files), outputs as (type, name), category, display name.
"""

WEIGHT_TYPES = ["linear", "ease in", "ease out", "ease in-out", "reverse in-out", "weak input", "weak output",
                "weak middle", "strong middle", "style transfer", "composition", "strong style transfer",
                "style and composition", "style transfer precise", "composition precise"]
SCALING = ["V only", "K+V", "K+V w/ C penalty", "K+mean(V) w/ C penalty"]
START = ("start_at", "FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.001})
END = ("end_at", "FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.001})
MODEL_OUT = [("MODEL", "MODEL")]

COMFY_IPADAPTER_NODES = {
    "IPAdapterUnifiedLoader": {
        "required": [("model", "MODEL", {}), ("preset", [
            "LIGHT - SD1.5 only (low strength)", "STANDARD (medium strength)", "VIT-G (medium strength)",
            "PLUS (high strength)", "PLUS FACE (portraits)", "FULL FACE - SD1.5 only (portraits stronger)"], {})],
        "optional": [("ipadapter", "IPADAPTER", {})],
        "outputs": [("MODEL", "model"), ("IPADAPTER", "ipadapter")], "category": "ipadapter",
        "display_name": "IPAdapter Unified Loader",
    },
    "IPAdapterModelLoader": {
        "required": [("ipadapter_file", None, {})],
        "outputs": [("IPADAPTER", "IPADAPTER")], "category": "ipadapter/loaders",
        "display_name": "IPAdapter Model Loader",
    },
    "IPAdapter": {
        "required": [("model", "MODEL", {}), ("ipadapter", "IPADAPTER", {}), ("image", "IMAGE", {}),
                     ("weight", "FLOAT", {"default": 1.0, "min": -1, "max": 3, "step": 0.05}), START, END,
                     ("weight_type", ["standard", "prompt is more important", "style transfer"], {})],
        "optional": [("attn_mask", "MASK", {})],
        "outputs": MODEL_OUT, "category": "ipadapter", "display_name": "IPAdapter",
    },
    "IPAdapterAdvanced": {
        "required": [("model", "MODEL", {}), ("ipadapter", "IPADAPTER", {}), ("image", "IMAGE", {}),
                     ("weight", "FLOAT", {"default": 1.0, "min": -1, "max": 5, "step": 0.05}),
                     ("weight_type", WEIGHT_TYPES, {}),
                     ("combine_embeds", ["concat", "add", "subtract", "average", "norm average"], {}), START, END,
                     ("embeds_scaling", SCALING, {})],
        "optional": [("image_negative", "IMAGE", {}), ("attn_mask", "MASK", {}), ("clip_vision", "CLIP_VISION", {})],
        "outputs": MODEL_OUT, "category": "ipadapter", "display_name": "IPAdapter Advanced",
    },
    "IPAdapterApply": {
        "required": [("ipadapter", "IPADAPTER", {}), ("clip_vision", "CLIP_VISION", {}), ("image", "IMAGE", {}),
                     ("model", "MODEL", {}), ("weight", "FLOAT", {"default": 1.0, "min": -1, "max": 3, "step": 0.05}),
                     ("noise", "FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01}),
                     ("weight_type", ["original", "linear", "channel penalty"], {}), START, END,
                     ("unfold_batch", "BOOLEAN", {"default": False})],
        "optional": [("attn_mask", "MASK", {})],
        "outputs": MODEL_OUT, "category": "ipadapter", "display_name": "Apply IPAdapter",
    },
    "IPAdapterEncoder": {
        "required": [("ipadapter", "IPADAPTER", {}), ("image", "IMAGE", {}),
                     ("weight", "FLOAT", {"default": 1.0, "min": -1.0, "max": 3.0, "step": 0.01})],
        "optional": [("mask", "MASK", {}), ("clip_vision", "CLIP_VISION", {})],
        "outputs": [("EMBEDS", "pos_embed"), ("EMBEDS", "neg_embed")], "category": "ipadapter/embeds",
        "display_name": "IPAdapter Encoder",
    },
    "IPAdapterEmbeds": {
        "required": [("model", "MODEL", {}), ("ipadapter", "IPADAPTER", {}), ("pos_embed", "EMBEDS", {}),
                     ("weight", "FLOAT", {"default": 1.0, "min": -1, "max": 3, "step": 0.05}),
                     ("weight_type", WEIGHT_TYPES, {}), START, END, ("embeds_scaling", SCALING, {})],
        "optional": [("neg_embed", "EMBEDS", {}), ("attn_mask", "MASK", {}), ("clip_vision", "CLIP_VISION", {})],
        "outputs": MODEL_OUT, "category": "ipadapter/embeds", "display_name": "IPAdapter Embeds",
    },
    "PrepImageForClipVision": {
        "required": [("image", "IMAGE", {}),
                     ("interpolation", ["LANCZOS", "BICUBIC", "HAMMING", "BILINEAR", "BOX", "NEAREST"], {}),
                     ("crop_position", ["top", "bottom", "left", "right", "center", "pad"], {}),
                     ("sharpening", "FLOAT", {"default": 0.0, "min": 0, "max": 1, "step": 0.05})],
        "outputs": [("IMAGE", "IMAGE")], "category": "ipadapter/utils", "display_name": "Prep Image For ClipVision",
    },
}
