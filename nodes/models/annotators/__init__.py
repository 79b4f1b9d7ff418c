"""The annotator models of comfyui_controlnet_aux's model-based preprocessors, read from the pack's own weight
files (lllyasviel/Annotators) in `models/annotators`: MiDaS (DPT-hybrid, on transformers' DPT) and LineArt."""
