"""ComfyUI's declarations of its ControlNet nodes, written down by hand from its source.

Read from comfyanonymous/ComfyUI: nodes.py (ControlNetLoader, DiffControlNetLoader, ControlNetApply,
ControlNetApplyAdvanced), comfy_extras/nodes_controlnet.py (SetUnionControlNetType,
ControlNetInpaintingAliMamaApply) and comfy/cldm/control_types.py (the union types).

Each node: its required and optional inputs in order as (name, type, options), where a combo's type is
its list of choices (None: the model files found, compared by type only); then its outputs as (type, name),
category, display name and whether ComfyUI marks it deprecated.
"""

STRENGTH = ("strength", "FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01})
START = ("start_percent", "FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.001})
END = ("end_percent", "FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.001})
UNION_TYPES = ["auto", "openpose", "depth", "hed/pidi/scribble/ted", "canny/lineart/anime_lineart/mlsd", "normal",
               "segment", "tile", "repaint"]

COMFY_CONTROLNET_NODES = {
    "ControlNetLoader": {
        "required": [("control_net_name", None, {})],
        "outputs": [("CONTROL_NET", "CONTROL_NET")], "category": "loaders", "display_name": "Load ControlNet Model",
    },
    "DiffControlNetLoader": {
        "required": [("model", "MODEL", {}), ("control_net_name", None, {})],
        "outputs": [("CONTROL_NET", "CONTROL_NET")], "category": "loaders",
        "display_name": "Load ControlNet Model (diff)",
    },
    "ControlNetApply": {
        "required": [("conditioning", "CONDITIONING", {}), ("control_net", "CONTROL_NET", {}), ("image", "IMAGE", {}),
                     STRENGTH],
        "outputs": [("CONDITIONING", "CONDITIONING")], "category": "conditioning/controlnet",
        "display_name": "Apply ControlNet (OLD)", "deprecated": True,
    },
    "ControlNetApplyAdvanced": {
        "required": [("positive", "CONDITIONING", {}), ("negative", "CONDITIONING", {}),
                     ("control_net", "CONTROL_NET", {}), ("image", "IMAGE", {}), STRENGTH, START, END],
        "optional": [("vae", "VAE", {})],
        "outputs": [("CONDITIONING", "positive"), ("CONDITIONING", "negative")],
        "category": "conditioning/controlnet", "display_name": "Apply ControlNet",
    },
    "SetUnionControlNetType": {
        "required": [("control_net", "CONTROL_NET", {}), ("type", UNION_TYPES, {})],
        "outputs": [("CONTROL_NET", "CONTROL_NET")], "category": "conditioning/controlnet",
        "display_name": "SetUnionControlNetType",
    },
    "ControlNetInpaintingAliMamaApply": {
        "required": [("positive", "CONDITIONING", {}), ("negative", "CONDITIONING", {}),
                     ("control_net", "CONTROL_NET", {}), ("vae", "VAE", {}), ("image", "IMAGE", {}),
                     ("mask", "MASK", {}), STRENGTH, START, END],
        "outputs": [("CONDITIONING", "positive"), ("CONDITIONING", "negative")],
        "category": "conditioning/controlnet", "display_name": "ControlNetInpaintingAliMamaApply",
    },
}
