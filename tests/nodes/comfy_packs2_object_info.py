"""More pack declarations written out by hand as data, in comfy_packs_object_info.py's shape.

Read from Suzie1/ComfyUI_Comfyroll_CustomNodes (nodes/conversion.py, nodes/nodes_aspect_ratio.py,
nodes/nodes_animation_schedulers.py, nodes/nodes_animation_prompt.py, nodes/nodes_core.py, nodes/controlnet.py,
the animation utilities' CR Current Frame) and
pythongosssss/ComfyUI-Custom-Scripts (py/show_text.py).
"""

SCHEDULE_FRAME = ("INT", {"default": 0, "min": 0, "max": 9999, "step": 1})
SCHEDULE_TYPES = ["Value", "Text", "Prompt", "Prompt Weight", "Model", "LoRA", "ControlNet", "Style", "Upscale",
                  "Camera", "Job"]


def aspect_ratio(size: int, ratios: list[str]) -> dict:
    return {"required": {"width": ("INT", {"default": size, "min": 64, "max": 8192}),
                         "height": ("INT", {"default": size, "min": 64, "max": 8192}),
                         "aspect_ratio": (["custom", *ratios], {}), "swap_dimensions": (["Off", "On"], {}),
                         "upscale_factor": ("FLOAT", {"default": 1.0, "min": 0.1, "max": 100.0, "step": 0.1}),
                         "batch_size": ("INT", {"default": 1, "min": 1, "max": 64})},
            "output": ["INT", "INT", "FLOAT", "INT", "LATENT", "STRING"],
            "output_name": ["width", "height", "upscale_factor", "batch_size", "empty_latent", "show_help"]}


PACK_NODES = {
    "CR Integer To String": {"required": {"int_": ("INT", {"default": 0, "min": 0, "max": 0xffffffffffffffff})},
                             "output": ["STRING", "STRING"], "output_name": ["STRING", "show_help"]},
    "CR Float To String": {"required": {"float_": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1000000.0})},
                           "output": ["STRING", "STRING"], "output_name": ["STRING", "show_help"]},
    "CR SD1.5 Aspect Ratio": aspect_ratio(512, [
        "1:1 square 512x512", "1:1 square 1024x1024", "2:3 portrait 512x768", "3:4 portrait 512x682",
        "3:2 landscape 768x512", "4:3 landscape 682x512", "16:9 cinema 910x512", "1.85:1 cinema 952x512",
        "2:1 cinema 1024x512", "2.39:1 anamorphic 1224x512"]),
    "CR SDXL Aspect Ratio": aspect_ratio(1024, [
        "1:1 square 1024x1024", "3:4 portrait 896x1152", "5:8 portrait 832x1216", "9:16 portrait 768x1344",
        "9:21 portrait 640x1536", "4:3 landscape 1152x896", "3:2 landscape 1216x832", "16:9 landscape 1344x768",
        "21:9 landscape 1536x640"]),
    "CR Current Frame": {"required": {"index": ("INT", {"default": 1, "min": -10000, "max": 10000}),
                                      "print_to_console": (["Yes", "No"], {})},
                         "output": ["INT"], "output_name": ["index"]},
    "CR Simple Value Scheduler": {
        "required": {"schedule": ("STRING", {"multiline": True, "default": "frame_number, value"}),
                     "current_frame": SCHEDULE_FRAME},
        "output": ["INT", "FLOAT", "STRING"], "output_name": ["INT", "FLOAT", "show_help"]},
    "CR Simple Text Scheduler": {
        "required": {"schedule": ("STRING", {"multiline": True, "default": "frame_number, text"}),
                     "current_frame": SCHEDULE_FRAME},
        "output": ["STRING", "STRING"], "output_name": ["STRING", "show_help"]},
    "CR Simple Prompt Scheduler": {
        "required": {"keyframe_list": ("STRING", {"multiline": True, "default": "frame_number, text"}),
                     "current_frame": SCHEDULE_FRAME, "keyframe_format": (["CR", "Deforum"], {})},
        "output": ["STRING", "STRING", "FLOAT", "STRING"],
        "output_name": ["current_prompt", "next_prompt", "weight", "show_help"]},
    "CR Encode Scheduled Prompts": {
        "required": {"clip": ("CLIP", {}), "current_prompt": ("STRING", {"multiline": True}),
                     "next_prompt": ("STRING", {"multiline": True}),
                     "weight": ("FLOAT", {"default": 0.0, "min": -9999.0, "max": 9999.0, "step": 0.01})},
        "output": ["CONDITIONING", "STRING"], "output_name": ["CONDITIONING", "show_help"]},
    "CR Prompt Text": {"required": {"prompt": ("STRING", {"default": "prompt", "multiline": True})},
                       "output": ["STRING", "STRING"], "output_name": ["prompt", "show_help"]},
    "CR Apply ControlNet": {
        "required": {"conditioning": ("CONDITIONING", {}), "control_net": ("CONTROL_NET", {}), "image": ("IMAGE", {}),
                     "switch": (["On", "Off"], {}),
                     "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01})},
        "output": ["CONDITIONING", "STRING"], "output_name": ["CONDITIONING", "show_help"]},
    "CR Central Schedule": {
        "required": {**{name: entry for i in (1, 2, 3) for name, entry in (
            (f"schedule_{i}", ("STRING", {"multiline": True, "default": "schedule"})),
            (f"schedule_type{i}", (SCHEDULE_TYPES, {})),
            (f"schedule_alias{i}", ("STRING", {"multiline": False, "default": ""})))},
            "schedule_format": (["CR", "Deforum"], {})},
        "optional": {"schedule": ("SCHEDULE", {})},
        "output": ["SCHEDULE", "STRING"], "output_name": ["SCHEDULE", "show_text"]},
    "CR Prompt Scheduler": {
        "required": {"mode": (["Default Prompt", "Keyframe List", "Schedule"], {}), "current_frame": SCHEDULE_FRAME,
                     "default_prompt": ("STRING", {"multiline": False, "default": "default prompt"}),
                     "schedule_format": (["CR", "Deforum"], {}), "interpolate_prompt": (["Yes", "No"], {})},
        "optional": {"schedule": ("SCHEDULE", {}),
                     "schedule_alias": ("STRING", {"multiline": False}),   # the pack's misspelt default is dropped
                     "keyframe_list": ("STRING", {"multiline": True, "default": "keyframe list"}),
                     "prepend_text": ("STRING", {"multiline": True, "default": "prepend text"}),
                     "append_text": ("STRING", {"multiline": True, "default": "append text"})},
        "output": ["STRING", "STRING", "FLOAT", "STRING"],
        "output_name": ["current_prompt", "next_prompt", "weight", "show_help"]},
    "CR Simple Prompt List": {
        "required": {f"prompt_{i}": ("STRING", {"multiline": True, "default": "prompt"}) for i in range(1, 6)},
        "optional": {"simple_prompt_list": ("SIMPLE_PROMPT_LIST", {})},
        "output": ["SIMPLE_PROMPT_LIST", "STRING"], "output_name": ["SIMPLE_PROMPT_LIST", "show_help"]},
    "CR Simple Prompt List Keyframes": {
        "required": {"simple_prompt_list": ("SIMPLE_PROMPT_LIST", {}),
                     "keyframe_interval": ("INT", {"default": 30, "min": 0, "max": 999, "step": 1}),
                     "loops": ("INT", {"default": 1, "min": 1, "max": 1000}),
                     "transition_type": (["Default"], {}), "transition_speed": (["Default"], {}),
                     "transition_profile": (["Default"], {}), "keyframe_format": (["Deforum"], {})},
        "output": ["STRING", "STRING"], "output_name": ["keyframe_list", "show_help"]},
    "CR LoRA Stack": {
        "required": {name: entry for i in (1, 2, 3) for name, entry in (
            (f"switch_{i}", (["Off", "On"], {})), (f"lora_name_{i}", (None, {})),   # "None", then models/loras
            (f"model_weight_{i}", ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01})),
            (f"clip_weight_{i}", ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01})))},
        "optional": {"lora_stack": ("LORA_STACK", {})},
        "output": ["LORA_STACK", "STRING"], "output_name": ["LORA_STACK", "show_help"]},
    "CR Apply LoRA Stack": {
        "required": {"model": ("MODEL", {}), "clip": ("CLIP", {}), "lora_stack": ("LORA_STACK", {})},
        "output": ["MODEL", "CLIP", "STRING"], "output_name": ["MODEL", "CLIP", "show_help"]},
    "CR Seed": {"required": {"seed": ("INT", {"default": 0, "min": 0, "max": 0xffffffffffffffff})},
                 "output": ["INT", "STRING"], "output_name": ["seed", "show_help"], "output_node": True},
    "ShowText|pysssss": {"required": {"text": ("STRING", {"forceInput": True})},
                         "output": ["STRING"], "output_name": ["STRING"], "output_node": True},
}
