"""Model loading for the Stable Diffusion nodes: shipped configs and tokenizer, family detection,
single-file (LDM layout) and diffusers-folder checkpoints. Nothing here ever touches a model hub."""
