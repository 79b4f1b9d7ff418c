"""ComfyUI's declarations of its image toolbox nodes, written down by hand from its source.

Read from comfyanonymous/ComfyUI: nodes.py (ImageBatch), comfy_extras/nodes_canny.py,
nodes_post_processing.py (ImageBlend, ImageBlur, ImageQuantize, ImageSharpen), nodes_images.py
(ImageCrop, RepeatImageBatch, ImageFromBatch, SaveAnimatedWEBP, SaveAnimatedPNG, ImageStitch,
GetImageSize, ImageRotate, ImageFlip, ImageScaleToMaxDimension) and nodes_mask.py
(ImageCompositeMasked, ImageColorToMask).

Each node: its inputs in order as (name, type, options), where a combo's type is its list of
choices and options holds default, min, max and step as ComfyUI gives them; then its outputs
(type, name), whether it is an output node, and its hidden inputs.
"""

MAX_RESOLUTION = 16384

IMAGE = ("IMAGE", {})


def image(name):
    return (name, *IMAGE)


COMFY_IMAGE_NODES = {
    "Canny": {
        "required": [image("image"),
                     ("low_threshold", "FLOAT", {"default": 0.4, "min": 0.01, "max": 0.99, "step": 0.01}),
                     ("high_threshold", "FLOAT", {"default": 0.8, "min": 0.01, "max": 0.99, "step": 0.01})],
        "outputs": [("IMAGE", "IMAGE")],
    },
    "ImageBlend": {
        "required": [image("image1"), image("image2"),
                     ("blend_factor", "FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01}),
                     ("blend_mode", ["normal", "multiply", "screen", "overlay", "soft_light", "difference"], {})],
        "outputs": [("IMAGE", "IMAGE")],
    },
    "ImageBlur": {
        "required": [image("image"),
                     ("blur_radius", "INT", {"default": 1, "min": 1, "max": 31, "step": 1}),
                     ("sigma", "FLOAT", {"default": 1.0, "min": 0.1, "max": 10.0, "step": 0.1})],
        "outputs": [("IMAGE", "IMAGE")],
    },
    "ImageSharpen": {
        "required": [image("image"),
                     ("sharpen_radius", "INT", {"default": 1, "min": 1, "max": 31, "step": 1}),
                     ("sigma", "FLOAT", {"default": 1.0, "min": 0.1, "max": 10.0, "step": 0.01}),
                     ("alpha", "FLOAT", {"default": 1.0, "min": 0.0, "max": 5.0, "step": 0.01})],
        "outputs": [("IMAGE", "IMAGE")],
    },
    "ImageQuantize": {
        "required": [image("image"),
                     ("colors", "INT", {"default": 256, "min": 1, "max": 256, "step": 1}),
                     ("dither", ["none", "floyd-steinberg", "bayer-2", "bayer-4", "bayer-8", "bayer-16"], {})],
        "outputs": [("IMAGE", "IMAGE")],
    },
    "ImageCrop": {
        "required": [image("image"),
                     ("width", "INT", {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1}),
                     ("height", "INT", {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1}),
                     ("x", "INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 1}),
                     ("y", "INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 1})],
        "outputs": [("IMAGE", "IMAGE")],
    },
    "ImageCompositeMasked": {
        "required": [image("destination"), image("source"),
                     ("x", "INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 1}),
                     ("y", "INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 1}),
                     ("resize_source", "BOOLEAN", {"default": False})],
        "optional": [("mask", "MASK", {})],
        "outputs": [("IMAGE", "IMAGE")],
    },
    "ImageBatch": {
        "required": [image("image1"), image("image2")],
        "outputs": [("IMAGE", "IMAGE")],
    },
    "ImageFromBatch": {
        "required": [image("image"),
                     ("batch_index", "INT", {"default": 0, "min": 0, "max": 4095}),
                     ("length", "INT", {"default": 1, "min": 1, "max": 4096})],
        "outputs": [("IMAGE", "IMAGE")],
    },
    "RepeatImageBatch": {
        "required": [image("image"), ("amount", "INT", {"default": 1, "min": 1, "max": 4096})],
        "outputs": [("IMAGE", "IMAGE")],
    },
    "GetImageSize": {
        "required": [image("image")],
        "outputs": [("INT", "width"), ("INT", "height"), ("INT", "batch_size")],
        "hidden": ["unique_id"],
    },
    "ImageStitch": {
        "required": [image("image1"),
                     ("direction", ["right", "down", "left", "up"], {"default": "right"}),
                     ("match_image_size", "BOOLEAN", {"default": True}),
                     ("spacing_width", "INT", {"default": 0, "min": 0, "max": 1024, "step": 2}),
                     ("spacing_color", ["white", "black", "red", "green", "blue"], {"default": "white"})],
        "optional": [image("image2")],
        "outputs": [("IMAGE", "IMAGE")],
    },
    "ImageScaleToMaxDimension": {
        "required": [image("image"),
                     # "bilinear" twice: ComfyUI's own list.
                     ("upscale_method", ["area", "lanczos", "bilinear", "nearest-exact", "bilinear", "bicubic"], {}),
                     ("largest_size", "INT", {"default": 512, "min": 0, "max": MAX_RESOLUTION, "step": 1})],
        "outputs": [("IMAGE", "IMAGE")],
    },
    "ImageFlip": {
        "required": [image("image"), ("flip_method", ["x-axis: vertically", "y-axis: horizontally"], {})],
        "outputs": [("IMAGE", "IMAGE")],
    },
    "ImageRotate": {
        "required": [image("image"), ("rotation", ["none", "90 degrees", "180 degrees", "270 degrees"], {})],
        "outputs": [("IMAGE", "IMAGE")],
    },
    "ImageColorToMask": {
        "required": [image("image"), ("color", "INT", {"default": 0, "min": 0, "max": 0xFFFFFF, "step": 1})],
        "outputs": [("MASK", "MASK")],
    },
    "SaveAnimatedWEBP": {
        "required": [image("images"),
                     ("filename_prefix", "STRING", {"default": "ComfyUI"}),
                     ("fps", "FLOAT", {"default": 6.0, "min": 0.01, "max": 1000.0, "step": 0.01}),
                     ("lossless", "BOOLEAN", {"default": True}),
                     ("quality", "INT", {"default": 80, "min": 0, "max": 100}),
                     ("method", ["default", "fastest", "slowest"], {})],
        "outputs": [],
        "output_node": True,
        "hidden": ["prompt", "extra_pnginfo"],
    },
    "SaveAnimatedPNG": {
        "required": [image("images"),
                     ("filename_prefix", "STRING", {"default": "ComfyUI"}),
                     ("fps", "FLOAT", {"default": 6.0, "min": 0.01, "max": 1000.0, "step": 0.01}),
                     ("compress_level", "INT", {"default": 4, "min": 0, "max": 9})],
        "outputs": [],
        "output_node": True,
        "hidden": ["prompt", "extra_pnginfo"],
    },
}
