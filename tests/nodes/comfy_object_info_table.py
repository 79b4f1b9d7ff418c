"""ComfyUI's declarations of the latent, mask and primitive toolbox nodes, written out by hand as data.

Read from ComfyUI's nodes.py (LatentComposite, LatentBlend, LatentFromBatch, RepeatLatentBatch, LatentCrop,
LatentFlip, LatentRotate and the display-name map), comfy_extras/nodes_latent.py, nodes_mask.py,
nodes_primitive.py, nodes_string.py and nodes_preview_any.py. Each entry mirrors INPUT_TYPES: input name →
(TYPE or list of choices, options), in ComfyUI's order; then the output types, category and display name.
"""

MAX_RESOLUTION = 16384
MAXSIZE = 9223372036854775807  # sys.maxsize on 64-bit Python, the primitives' bounds


def _int(default, lo, hi, step=None):
    options = {"default": default, "min": lo, "max": hi}
    return ("INT", options if step is None else {**options, "step": step})


def _float(default, lo, hi, step):
    return ("FLOAT", {"default": default, "min": lo, "max": hi, "step": step})


POSITION_8 = _int(0, 0, MAX_RESOLUTION, 8)
POSITION_1 = _int(0, 0, MAX_RESOLUTION, 1)
SIZE_1 = _int(512, 1, MAX_RESOLUTION, 1)

COMFY_NODES = {
    # --- latent ------------------------------------------------------------------------------------------
    "LatentComposite": {
        "required": {"samples_to": ("LATENT",), "samples_from": ("LATENT",), "x": POSITION_8, "y": POSITION_8,
                     "feather": POSITION_8},
        "output": ["LATENT"], "category": "latent", "display_name": "Latent Composite"},
    "LatentCompositeMasked": {
        "required": {"destination": ("LATENT",), "source": ("LATENT",), "x": POSITION_8, "y": POSITION_8,
                     "resize_source": ("BOOLEAN", {"default": False})},
        "optional": {"mask": ("MASK",)},
        "output": ["LATENT"], "category": "latent", "display_name": "LatentCompositeMasked"},
    "LatentBlend": {
        "required": {"samples1": ("LATENT",), "samples2": ("LATENT",), "blend_factor": _float(0.5, 0, 1, 0.01)},
        "output": ["LATENT"], "category": "_for_testing", "display_name": "Latent Blend"},
    "LatentAdd": {
        "required": {"samples1": ("LATENT",), "samples2": ("LATENT",)},
        "output": ["LATENT"], "category": "latent/advanced", "display_name": "LatentAdd"},
    "LatentSubtract": {
        "required": {"samples1": ("LATENT",), "samples2": ("LATENT",)},
        "output": ["LATENT"], "category": "latent/advanced", "display_name": "LatentSubtract"},
    "LatentMultiply": {
        "required": {"samples": ("LATENT",), "multiplier": _float(1.0, -10.0, 10.0, 0.01)},
        "output": ["LATENT"], "category": "latent/advanced", "display_name": "LatentMultiply"},
    "LatentInterpolate": {
        "required": {"samples1": ("LATENT",), "samples2": ("LATENT",), "ratio": _float(1.0, 0.0, 1.0, 0.01)},
        "output": ["LATENT"], "category": "latent/advanced", "display_name": "LatentInterpolate"},
    "LatentFromBatch": {
        "required": {"samples": ("LATENT",), "batch_index": _int(0, 0, 63), "length": _int(1, 1, 64)},
        "output": ["LATENT"], "category": "latent/batch", "display_name": "Latent From Batch"},
    "RepeatLatentBatch": {
        "required": {"samples": ("LATENT",), "amount": _int(1, 1, 64)},
        "output": ["LATENT"], "category": "latent/batch", "display_name": "Repeat Latent Batch"},
    "LatentBatch": {
        "required": {"samples1": ("LATENT",), "samples2": ("LATENT",)},
        "output": ["LATENT"], "category": "latent/batch", "display_name": "LatentBatch"},
    "LatentCrop": {
        "required": {"samples": ("LATENT",), "width": _int(512, 64, MAX_RESOLUTION, 8),
                     "height": _int(512, 64, MAX_RESOLUTION, 8), "x": POSITION_8, "y": POSITION_8},
        "output": ["LATENT"], "category": "latent/transform", "display_name": "Crop Latent"},
    "LatentFlip": {
        "required": {"samples": ("LATENT",), "flip_method": (["x-axis: vertically", "y-axis: horizontally"],)},
        "output": ["LATENT"], "category": "latent/transform", "display_name": "Flip Latent"},
    "LatentRotate": {
        "required": {"samples": ("LATENT",),
                     "rotation": (["none", "90 degrees", "180 degrees", "270 degrees"],)},
        "output": ["LATENT"], "category": "latent/transform", "display_name": "Rotate Latent"},
    "LatentBatchSeedBehavior": {
        "required": {"samples": ("LATENT",), "seed_behavior": (["random", "fixed"], {"default": "fixed"})},
        "output": ["LATENT"], "category": "latent/advanced", "display_name": "LatentBatchSeedBehavior"},
    # --- mask --------------------------------------------------------------------------------------------
    "MaskToImage": {
        "required": {"mask": ("MASK",)},
        "output": ["IMAGE"], "category": "mask", "display_name": "Convert Mask to Image"},
    "ImageToMask": {
        "required": {"image": ("IMAGE",), "channel": (["red", "green", "blue", "alpha"],)},
        "output": ["MASK"], "category": "mask", "display_name": "Convert Image to Mask"},
    "SolidMask": {
        "required": {"value": _float(1.0, 0.0, 1.0, 0.01), "width": SIZE_1, "height": SIZE_1},
        "output": ["MASK"], "category": "mask", "display_name": "SolidMask"},
    "InvertMask": {
        "required": {"mask": ("MASK",)},
        "output": ["MASK"], "category": "mask", "display_name": "InvertMask"},
    "CropMask": {
        "required": {"mask": ("MASK",), "x": POSITION_1, "y": POSITION_1, "width": SIZE_1, "height": SIZE_1},
        "output": ["MASK"], "category": "mask", "display_name": "CropMask"},
    "MaskComposite": {
        "required": {"destination": ("MASK",), "source": ("MASK",), "x": POSITION_1, "y": POSITION_1,
                     "operation": (["multiply", "add", "subtract", "and", "or", "xor"],)},
        "output": ["MASK"], "category": "mask", "display_name": "MaskComposite"},
    "FeatherMask": {
        "required": {"mask": ("MASK",), "left": POSITION_1, "top": POSITION_1, "right": POSITION_1,
                     "bottom": POSITION_1},
        "output": ["MASK"], "category": "mask", "display_name": "FeatherMask"},
    "GrowMask": {
        "required": {"mask": ("MASK",), "expand": _int(0, -MAX_RESOLUTION, MAX_RESOLUTION, 1),
                     "tapered_corners": ("BOOLEAN", {"default": True})},
        "output": ["MASK"], "category": "mask", "display_name": "GrowMask"},
    "ThresholdMask": {
        "required": {"mask": ("MASK",), "value": _float(0.5, 0.0, 1.0, 0.01)},
        "output": ["MASK"], "category": "mask", "display_name": "ThresholdMask"},
    # --- primitives and utilities -------------------------------------------------------------------------
    "PrimitiveInt": {
        "required": {"value": ("INT", {"min": -MAXSIZE, "max": MAXSIZE, "control_after_generate": True})},
        "output": ["INT"], "category": "utils/primitive", "display_name": "Int"},
    "PrimitiveFloat": {
        "required": {"value": ("FLOAT", {"min": -MAXSIZE, "max": MAXSIZE})},
        "output": ["FLOAT"], "category": "utils/primitive", "display_name": "Float"},
    "PrimitiveString": {
        "required": {"value": ("STRING", {})},
        "output": ["STRING"], "category": "utils/primitive", "display_name": "String"},
    "PrimitiveStringMultiline": {
        "required": {"value": ("STRING", {"multiline": True})},
        "output": ["STRING"], "category": "utils/primitive", "display_name": "String (Multiline)"},
    "PrimitiveBoolean": {
        "required": {"value": ("BOOLEAN", {})},
        "output": ["BOOLEAN"], "category": "utils/primitive", "display_name": "Boolean"},
    "StringConcatenate": {
        "required": {"string_a": ("STRING", {"multiline": True}), "string_b": ("STRING", {"multiline": True}),
                     "delimiter": ("STRING", {"multiline": False, "default": ""})},
        "output": ["STRING"], "category": "utils/string", "display_name": "Concatenate"},
    "PreviewAny": {
        "required": {"source": ("*", {})},
        "output": [], "category": "utils", "display_name": "Preview Any", "output_node": True},
}
