"""On CPython an atomic replace is durable only once its directory is synced: ``OtaFiles`` does it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from device.ota import otafs
from device.ota.otafs import OtaFiles


def test_write_json_syncs_the_file_then_its_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(otafs.os, "fsync", fsync)
    files = OtaFiles(str(tmp_path))
    files.makedirs("ota")
    files.write_json("ota/boot.json", {"v": 1})
    assert synced == ["file", "dir"]  # the data before the rename, the rename after it
    assert files.read_json("ota/boot.json") == {"v": 1} and not files.exists("ota/boot.json.tmp")
