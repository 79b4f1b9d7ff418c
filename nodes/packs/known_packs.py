"""Custom node packs that SD workflows use and this engine does not build, by the class names they declare.

The registry calls `explain_missing_node` for a workflow's unknown class names, so validation (API,
CLI and editor alike) names the pack a missing node comes from instead of only "not found".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KnownPack:
    name: str
    repository: str
    prefixes: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()
    names: frozenset[str] = frozenset()
    note: str = ""   # why the pack's nodes are missing, when that is more than "not rebuilt"

    def declares(self, class_type: str) -> bool:
        return (class_type in self.names or class_type.startswith(self.prefixes)
                or class_type.endswith(self.suffixes))


# Name patterns come from each pack's NODE_CLASS_MAPPINGS. The nodes of these packs that we do build
# are registered, so they never reach this table.
KNOWN_PACKS = (
    KnownPack("AnimateDiff-Evolved", "Kosinkadink/ComfyUI-AnimateDiff-Evolved", prefixes=("ADE_",),
              names=frozenset({"AnimateDiffLoaderV1", "AnimateDiffSampler", "AnimateDiffCombine"})),
    KnownPack("Advanced-ControlNet", "Kosinkadink/ComfyUI-Advanced-ControlNet", prefixes=("ACN_",),
              names=frozenset({"ControlNetLoaderAdvanced", "DiffControlNetLoaderAdvanced",
                               "ScaledSoftControlNetWeights", "SoftControlNetWeights", "CustomControlNetWeights",
                               "LatentKeyframe", "TimestepKeyframe"})),
    KnownPack("VideoHelperSuite", "Kosinkadink/ComfyUI-VideoHelperSuite", prefixes=("VHS_",)),
    KnownPack("IPAdapter plus", "cubiq/ComfyUI_IPAdapter_plus", prefixes=("IPAdapter", "PrepImageForClipVision")),
    KnownPack("Impact Pack", "ltdrdata/ComfyUI-Impact-Pack", prefixes=("Impact", "SEGS"),
              names=frozenset({"FaceDetailer", "FaceDetailerPipe", "DetailerForEach", "DetailerForEachDebug",
                               "UltralyticsDetectorProvider", "SAMLoader", "BboxDetectorSEGS", "SegmDetectorSEGS",
                               "ToBasicPipe", "FromBasicPipe", "BasicPipeToDetailerPipe", "ImpactWildcardProcessor",
                               "ImpactWildcardEncode", "MaskToSEGS", "SEGSDetailer", "SEGSPaste",
                               "SAMDetectorCombined", "SAMDetectorSegmented", "ONNXDetectorProvider",
                               "CLIPSegDetectorProvider", "BboxDetectorCombined_v2", "SegmDetectorCombined_v2",
                               "DetailerForEachPipe", "MaskDetailerPipe"}),
              note="detection-based nodes (Ultralytics, SAM, ONNX detectors, FaceDetailer and the other "
                   "detailers) are out of scope in this engine for now"),
    KnownPack("UltimateSDUpscale", "ssitu/ComfyUI_UltimateSDUpscale",
              names=frozenset({"UltimateSDUpscale", "UltimateSDUpscaleNoUpscale", "UltimateSDUpscaleCustomSample"})),
    KnownPack("Efficiency Nodes", "jags111/efficiency-nodes-comfyui", suffixes=("(Efficient)",),
              names=frozenset({"Efficient Loader", "Eff. Loader SDXL", "LoRA Stacker", "Control Net Stacker",
                               "XY Plot", "HighRes-Fix Script", "Noise Control Script", "Tiled Upscaler Script"})),
    KnownPack("controlnet_aux", "Fannovel16/comfyui_controlnet_aux", suffixes=("Preprocessor",),
              names=frozenset({"AIO_Preprocessor", "ControlNetPreprocessorSelector"})),
    KnownPack("rgthree", "rgthree/rgthree-comfy", suffixes=("(rgthree)",)),
    KnownPack("Custom-Scripts", "pythongosssss/ComfyUI-Custom-Scripts", suffixes=("|pysssss",)),
    KnownPack("essentials", "cubiq/ComfyUI_essentials", suffixes=("+",)),
    KnownPack("mtb", "melMass/comfy_mtb", suffixes=("(mtb)",)),
    KnownPack("tinyterraNodes", "TinyTerra/ComfyUI_tinyterraNodes", prefixes=("ttN ",)),
    KnownPack("Comfyroll Studio", "Suzie1/ComfyUI_Comfyroll_CustomNodes", prefixes=("CR ",)),
    KnownPack("Use Everywhere", "chrisgoringe/cg-use-everywhere", suffixes=("Everywhere", "Everywhere?"),
              names=frozenset({"Anything Everywhere3"})),
    KnownPack("WAS Node Suite", "WASasquatch/was-node-suite-comfyui", suffixes=("(WAS)",),
              prefixes=("Text ", "Image ", "Load Text", "Save Text", "Latent ", "BLIP ", "SAM ", "Mask ")),
    KnownPack("KJNodes", "kijai/ComfyUI-KJNodes",
              names=frozenset({"ConditioningMultiCombine", "GetImageSizeAndCount", "ImageConcanate",
                               "ColorMatch", "GrowMaskWithBlur", "INTConstant", "FloatConstant",
                               "SetNode", "GetNode"})),
    KnownPack("Derfuu Modded Nodes", "Derfuu/Derfuu_ComfyUI_ModdedNodes", suffixes=("(Derfuu)",)),
    KnownPack("QualityOfLifeSuit_Omar92", "omar92/ComfyUI-QualityOfLifeSuit_Omar92", suffixes=(" _O",)),
    KnownPack("ComfyUI_experiments", "comfyanonymous/ComfyUI_experiments", names=frozenset({"ReferenceOnlySimple"})),
)


def pack_of(class_type: str) -> KnownPack | None:
    """The known pack that declares `class_type`, if any."""
    return next((pack for pack in KNOWN_PACKS if pack.declares(class_type)), None)


def explain_missing_node(class_type: str) -> str | None:
    """The validation message for a missing node of a known pack (None for names no known pack declares)."""
    pack = pack_of(class_type)
    if pack is None:
        return None
    why = pack.note or "its Python cannot run here and this node is not rebuilt"
    return f"{pack.name}'s {class_type} is not available in this engine (node pack {pack.repository}; {why})"
