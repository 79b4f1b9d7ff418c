"""`/object_info` of comfyui_controlnet_aux's and Advanced-ControlNet's nodes we rebuild, written by hand from
the packs' sources (controlnet_aux: utils.INPUT and node_wrappers/*.py; Advanced-ControlNet:
adv_control/nodes_deprecated.py, whose node ids shared workflows use)."""

MAX_RESOLUTION = 16384
RESOLUTION = ["INT", {"default": 512, "min": 64, "max": MAX_RESOLUTION, "step": 64}]
IMAGE_IN = {"image": ["IMAGE"]}
IMAGE_OUT = {"output": ["IMAGE"], "output_name": ["IMAGE"]}
PI = 3.141592653589793

CONTROLNET_AUX_NODES = {
    "CannyEdgePreprocessor": {"required": IMAGE_IN, "optional": {
        "low_threshold": ["INT", {"default": 100, "min": 0, "max": 255, "step": 1}],
        "high_threshold": ["INT", {"default": 200, "min": 0, "max": 255, "step": 1}],
        "resolution": RESOLUTION}, **IMAGE_OUT},
    "LineartStandardPreprocessor": {"required": IMAGE_IN, "optional": {
        "guassian_sigma": ["FLOAT", {"default": 6.0, "min": 0.0, "max": 100.0, "step": 0.01}],
        "intensity_threshold": ["INT", {"default": 8, "min": 0, "max": 16, "step": 1}],
        "resolution": RESOLUTION}, **IMAGE_OUT},
    "BinaryPreprocessor": {"required": IMAGE_IN, "optional": {
        "bin_threshold": ["INT", {"default": 100, "min": 0, "max": 255, "step": 1}],
        "resolution": RESOLUTION}, **IMAGE_OUT},
    "ColorPreprocessor": {"required": IMAGE_IN, "optional": {"resolution": RESOLUTION}, **IMAGE_OUT},
    "ShufflePreprocessor": {"required": IMAGE_IN, "optional": {
        "resolution": RESOLUTION, "seed": ["INT", {"default": 0, "min": 0, "max": 0xffffffffffffffff}]}, **IMAGE_OUT},
    "TilePreprocessor": {"required": IMAGE_IN, "optional": {
        "pyrUp_iters": ["INT", {"default": 3, "min": 1, "max": 10, "step": 1}], "resolution": RESOLUTION},
        **IMAGE_OUT},
    "MiDaS-DepthMapPreprocessor": {"required": IMAGE_IN, "optional": {
        "a": ["FLOAT", {"default": PI * 2.0, "min": 0.0, "max": PI * 5.0, "step": 0.01}],
        "bg_threshold": ["FLOAT", {"default": 0.1, "min": 0.0, "max": 1.0, "step": 0.01}],
        "resolution": RESOLUTION}, **IMAGE_OUT},
    "Zoe-DepthMapPreprocessor": {"required": IMAGE_IN, "optional": {"resolution": RESOLUTION}, **IMAGE_OUT},
    "LineArtPreprocessor": {"required": IMAGE_IN, "optional": {
        "coarse": [["disable", "enable"], {"default": "disable"}], "resolution": RESOLUTION}, **IMAGE_OUT},
    "DWPreprocessor": {"required": IMAGE_IN, "optional": {
        "detect_hand": [["enable", "disable"], {"default": "enable"}],
        "detect_body": [["enable", "disable"], {"default": "enable"}],
        "detect_face": [["enable", "disable"], {"default": "enable"}],
        "resolution": RESOLUTION,
        "bbox_detector": [["None", "yolox_l.torchscript.pt", "yolox_l.onnx", "yolo_nas_l_fp16.onnx",
                           "yolo_nas_m_fp16.onnx", "yolo_nas_s_fp16.onnx"], {"default": "yolox_l.onnx"}],
        "pose_estimator": [["dw-ll_ucoco_384_bs5.torchscript.pt", "dw-ll_ucoco_384.onnx", "dw-ll_ucoco.onnx"],
                           {"default": "dw-ll_ucoco_384_bs5.torchscript.pt"}],
        "scale_stick_for_xinsr_cn": [["disable", "enable"], {"default": "disable"}]},
        "output": ["IMAGE", "POSE_KEYPOINT"], "output_name": ["IMAGE", "POSE_KEYPOINT"]},
}

ADVANCED_CONTROLNET_NODES = {
    "ControlNetLoaderAdvanced": {
        "required": {"control_net_name": [None]},
        "optional": {"tk_optional": ["TIMESTEP_KEYFRAME"]},
        "output": ["CONTROL_NET"], "output_name": ["CONTROL_NET"]},
    "ACN_AdvancedControlNetApply": {
        "required": {"positive": ["CONDITIONING"], "negative": ["CONDITIONING"], "control_net": ["CONTROL_NET"],
                     "image": ["IMAGE"],
                     "strength": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01}],
                     "start_percent": ["FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.001}],
                     "end_percent": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.001}]},
        "optional": {"mask_optional": ["MASK"], "timestep_kf": ["TIMESTEP_KEYFRAME"],
                     "latent_kf_override": ["LATENT_KEYFRAME"], "weights_override": ["CONTROL_NET_WEIGHTS"],
                     "model_optional": ["MODEL"], "vae_optional": ["VAE"]},
        "output": ["CONDITIONING", "CONDITIONING", "MODEL"], "output_name": ["positive", "negative", "model_opt"]},
    "ScaledSoftControlNetWeights": {
        "required": {"base_multiplier": ["FLOAT", {"default": 0.825, "min": 0.0, "max": 1.0, "step": 0.001}],
                     "flip_weights": ["BOOLEAN", {"default": False}]},
        "optional": {"uncond_multiplier": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}],
                     "cn_extras": ["CN_WEIGHTS_EXTRAS"]},
        "output": ["CONTROL_NET_WEIGHTS", "TIMESTEP_KEYFRAME"], "output_name": ["CN_WEIGHTS", "TK_SHORTCUT"]},
}
