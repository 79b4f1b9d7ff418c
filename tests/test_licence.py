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
