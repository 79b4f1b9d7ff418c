"""ComfyUI's declarations of its inpainting nodes, written out by hand as data.

Read from ComfyUI's nodes.py (VAEEncodeForInpaint, InpaintModelConditioning and the display-name map,
which names only the first). Each entry mirrors INPUT_TYPES: input name → (TYPE, options), in ComfyUI's
order; then the output types and names, category and display name.
"""

NOISE_MASK_TOOLTIP = ("Add a noise mask to the latent so sampling will only happen within the mask. Might improve "
                      "results or completely break things depending on the model.")

COMFY_INPAINT_NODES = {
    "VAEEncodeForInpaint": {
        "required": {"pixels": ("IMAGE",), "vae": ("VAE",), "mask": ("MASK",),
                     "grow_mask_by": ("INT", {"default": 6, "min": 0, "max": 64, "step": 1})},
        "output": ["LATENT"], "output_name": ["LATENT"], "category": "latent/inpaint",
        "display_name": "VAE Encode (for Inpainting)"},
    "InpaintModelConditioning": {
        "required": {"positive": ("CONDITIONING",), "negative": ("CONDITIONING",), "vae": ("VAE",),
                     "pixels": ("IMAGE",), "mask": ("MASK",),
                     "noise_mask": ("BOOLEAN", {"default": True, "tooltip": NOISE_MASK_TOOLTIP})},
        "output": ["CONDITIONING", "CONDITIONING", "LATENT"], "output_name": ["positive", "negative", "latent"],
        "category": "conditioning/inpaint", "display_name": "InpaintModelConditioning"},
}
