"""Finding an annotator's weight file as comfyui_controlnet_aux names it, in `models/annotators`.

The pack downloads into `ckpts/<repo>/<subfolder>/<file>` (e.g. `lllyasviel/Annotators/sk_model.pth`); a copy of
that tree, or the files laid flat in the folder, are both found.
"""

from __future__ import annotations

from pathlib import Path

from engine.paths import Paths

ANNOTATORS_REPO = "lllyasviel/Annotators"
ANNOTATORS_KIND = "annotators"


class AnnotatorFileMissing(FileNotFoundError):
    """No folder of the `annotators` kind holds the file, flat or under the pack's sub-folders."""


def annotator_file(paths: Paths, filename: str, repo: str = ANNOTATORS_REPO, subfolder: str = "") -> Path:
    """The path of `filename`: flat in an annotators folder, or where the pack's download puts it."""
    nested = "/".join(part for part in (repo, subfolder, filename) if part)
    for name in (filename, nested):
        try:
            return paths.model_path(ANNOTATORS_KIND, name)
        except FileNotFoundError:
            continue
    folders = ", ".join(str(folder) for folder in paths.model_dirs(ANNOTATORS_KIND))
    raise AnnotatorFileMissing(f"put {filename} (from {repo}) in {folders}, flat or as {nested}")
