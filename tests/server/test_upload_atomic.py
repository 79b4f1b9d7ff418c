"""An upload that overwrites (`overwrite=true`) leaves the old file or the new one, never a torn one: the new
bytes are synced before they replace the old, and a write that fails (a full disk) keeps the old file and
leaves no temporary file behind."""

from __future__ import annotations

import errno
import os

import pytest

from api import user_files
from api.routes_files import store_upload


def test_an_overwriting_upload_is_synced_before_it_replaces_the_file(tmp_path, monkeypatch):
    (tmp_path / "a.png").write_bytes(b"old")
    steps: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        steps.append("fsync")
        real_fsync(fd)

    def replace(source, target):
        steps.append("replace")
        real_replace(source, target)

    monkeypatch.setattr(user_files.os, "fsync", fsync)
    monkeypatch.setattr(user_files.os, "replace", replace)
    assert store_upload(tmp_path, "", "a.png", b"new", overwrite=True) == ("a.png", "")
    assert (tmp_path / "a.png").read_bytes() == b"new"
    assert steps == ["fsync", "replace"]


def test_an_overwriting_upload_that_fails_keeps_the_old_file_and_no_temporary_one(tmp_path, monkeypatch):
    (tmp_path / "a.png").write_bytes(b"old")

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(user_files.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        store_upload(tmp_path, "", "a.png", b"new", overwrite=True)
    assert (tmp_path / "a.png").read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]
