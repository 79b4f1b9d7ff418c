"""SaveImage after a kill: never a truncated file under a final name, never an orphan that a re-run duplicates."""

import subprocess
import sys

import pytest
import torch
from PIL import Image

from engine.context import InterruptHandle, RunContext
from engine.paths import Paths
from nodes import image_save
from nodes.image_save import SaveImage, save_images


@pytest.fixture
def paths(tmp_path):
    return Paths(tmp_path / "models", tmp_path / "input", tmp_path / "output", tmp_path / "temp")


def run_save(paths, prompt_id, batch=1, node_id="9"):
    ctx = RunContext(node_id=node_id, prompt_id=prompt_id, paths=paths, interrupt=InterruptHandle(),
                     emit=lambda event, data: None, settings={})
    result = SaveImage().run(ctx, images=torch.full((batch, 2, 2, 3), 0.5), filename_prefix="out")
    return [image["filename"] for image in result.ui["images"]]


def visible(folder):
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def test_a_write_cut_short_leaves_no_file_under_its_name(paths, monkeypatch):
    def killed_mid_write(self, handle, **_):
        handle.write(b"\x89PNG\r\n\x1a\n half a file")
        raise KeyboardInterrupt  # what a signal does between two writes

    monkeypatch.setattr(Image.Image, "save", killed_mid_write)
    with pytest.raises(KeyboardInterrupt):
        save_images(torch.zeros((1, 2, 2, 3)), paths.output_dir, "out", "output", {}, compress_level=1)

    assert visible(paths.output_dir) == [] and list(paths.output_dir.iterdir()) == []


def test_the_temporary_file_of_a_killed_process_is_removed_by_the_next_save(paths):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    paths.output_dir.mkdir(parents=True)
    leftover = paths.output_dir / f".sdgraph-{image_save._HOST}-{dead.stdout.strip()}-abc{image_save.PARTIAL_SUFFIX}"
    leftover.write_bytes(b"\x89PNG truncated")

    assert run_save(paths, "p1") == ["out_00001_.png"]
    assert not leftover.exists()


def test_a_prompt_started_again_after_a_kill_replaces_its_earlier_files(paths):
    assert run_save(paths, "p1", batch=2) == ["out_00001_.png", "out_00002_.png"]
    # The server was killed before p1 was recorded as done; after the restart p1 runs again.
    assert run_save(paths, "p1", batch=2) == ["out_00001_.png", "out_00002_.png"]
    assert visible(paths.output_dir) == ["out_00001_.png", "out_00002_.png"]
    assert Image.open(paths.output_dir / "out_00001_.png").size == (2, 2)


def test_other_prompts_and_other_nodes_keep_their_files(paths):
    assert run_save(paths, "p1") == ["out_00001_.png"]
    assert run_save(paths, "p2") == ["out_00002_.png"]
    assert run_save(paths, "p2", node_id="10") == ["out_00003_.png"]
    assert visible(paths.output_dir) == ["out_00001_.png", "out_00002_.png", "out_00003_.png"]


def test_a_file_that_replaced_a_journaled_one_is_not_removed(paths):
    run_save(paths, "p1")
    precious = paths.output_dir / "out_00001_.png"
    precious.unlink()
    precious.write_bytes(b"someone else's file")  # a new inode under the journaled name

    assert run_save(paths, "p1") == ["out_00002_.png"]
    assert precious.read_bytes() == b"someone else's file"
