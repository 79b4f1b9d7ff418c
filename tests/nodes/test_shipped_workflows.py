"""Our own API-format workflows in `workflows/` run as shipped, through the real CLI, with nothing
installed: the built-in tiny models are generated on first use in an empty models folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.pngmeta import read_png_metadata

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p.name for p in (ROOT / "workflows").glob("*.json"))
# Passed on so that a loaded CI machine can limit torch's threads (oversubscribed OpenMP crawls).
# Thread counts, and the compile default the suite sets (tests/conftest.py: eager, as compared), carried into
# the clean environment of the CLI processes.
CARRIED_SETTINGS = {k: v for k, v in os.environ.items()
                    if k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "SDGRAPH_COMPILE")}
EXPECTED = {"txt2img.json", "img2img.json", "inpaint.json", "hires_fix.json", "lora.json", "sdxl.json",
            "lcm_lora.json", "turbo.json", "lightning_lora.json"}


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    """One empty models folder for all runs, so each built-in model is generated only once."""
    return tmp_path_factory.mktemp("models")


def test_the_expected_workflows_are_shipped():
    assert EXPECTED <= set(SHIPPED)


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_runs_as_shipped_and_its_png_carries_the_same_graph(name, models_dir, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "engine", "run", ROOT / "workflows" / name, "--models-dir", models_dir,
         "--output-dir", tmp_path / "output", "--input-dir", tmp_path / "input", "--temp-dir", tmp_path / "temp",
         "--quiet"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **CARRIED_SETTINGS})
    assert result.returncode == 0, result.stderr
    images = [Path(line) for line in result.stdout.splitlines()]
    assert images and all(p.suffix == ".png" and p.is_file() and p.parent == tmp_path / "output" for p in images)
    shipped = json.loads((ROOT / "workflows" / name).read_text())
    for image in images:
        assert read_png_metadata(image).prompt == shipped
