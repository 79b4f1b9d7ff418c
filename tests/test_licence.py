"""The repository is usable under Apache-2.0, and its third-party files say which licence they keep."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The tracked source folders (models/, output/ and the virtualenv are ignored, and not ours to list).
SOURCE_FOLDERS = ("engine", "api", "nodes", "web", "tests", "tools", "bench", "workflows")


def readme_licence_section() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^## Licence\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, "the README has a '## Licence' section"
    return match.group(1)


def test_the_repository_is_apache_2_0_in_the_licence_file_the_package_metadata_and_the_readme():
    licence = (ROOT / "LICENSE").read_text()
    assert licence.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in licence
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    assert "Apache-2.0 (`LICENSE`)" in readme_licence_section()


def test_the_readme_names_every_folder_that_keeps_a_licence_of_its_own():
    folders = sorted({path.parent.relative_to(ROOT).as_posix() for base in SOURCE_FOLDERS
                      for path in (ROOT / base).rglob("LICENSE*") if "__pycache__" not in path.parts})
    assert folders, "the ComfyUI workflow fixtures keep their MIT licence"
    section = readme_licence_section()
    assert [folder for folder in folders if f"`{folder}/`" not in section] == []


def licence_kept_in(folder: Path) -> str:
    """The licence text a folder carries: its LICENSE files, and the `## Licence` section of its SOURCE.md."""
    texts = [path.read_text() for path in sorted(folder.glob("LICENSE*"))]
    source = folder / "SOURCE.md"
    if source.is_file():
        match = re.search(r"^## Licence\n(.*?)(?=^## |\Z)", source.read_text(), re.S | re.M)
        texts += [match.group(1)] if match else []
    return "\n".join(texts)


def test_every_folder_the_readme_names_carries_its_licence_with_its_files():
    folders = re.findall(r"`([\w./-]+)/`", readme_licence_section())
    assert "nodes/models/tokenizer" in folders
    assert [folder for folder in folders if "MIT License" not in licence_kept_in(ROOT / folder)] == []
    assert "Copyright (c) 2021 OpenAI" in licence_kept_in(ROOT / "nodes/models/tokenizer")
