"""``brickproof flash`` and the OTA files: ``ota/`` survives every flash; a flash that changed files
forgets the boot record (``ota/boot.json``) so the board boots what was flashed.

The board is a dict filesystem that runs the flash tool's own board code (the
write helper, the hash loop, the remove of the boot record) on CPython.
"""

from __future__ import annotations

import binascii
import hashlib
import json
from pathlib import Path

import pytest

from tools import flash

SLOT = {
    "ota/a/device/boot.mpy": b"slot code",
    "ota/a/bundle.json": b'{"version": "0.2.0"}',
    "ota/dl.part": b"partial download",
    "ota/dl.json": b'{"offset": 16}',
}
RECORD = {"ota/boot.json": b'{"v": 1, "good": "a", "booted": "a"}'}


class DictBoard:
    """Files by path (no leading slash); ``run`` executes the flash tool's board code against them."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = dict(files)
        self.resets = 0

    def __call__(self, port: str, timeout_s: float) -> DictBoard:
        return self

    def __enter__(self) -> DictBoard:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def _s(self, path: str, b64: str, mode: str) -> None:
        key = path.lstrip("/")
        self.files[key] = (self.files.get(key, b"") if mode == "ab" else b"") + binascii.a2b_base64(b64)

    def _remove(self, path: str) -> None:
        if path.lstrip("/") not in self.files:
            raise OSError(2, "ENOENT")
        del self.files[path.lstrip("/")]

    def run(self, code: str, timeout_s: float | None = None) -> str:
        if code == flash._READ_MANIFEST:
            return self.files.get(flash.MANIFEST, b"{}").decode()
        if "statvfs" in code:
            return str(1 << 20)
        if "_h(_p)" in code:
            paths = eval(code.split("for _p in ", 1)[1].split(":", 1)[0])
            return "\n".join(f"{p} {hashlib.sha256(self.files.get(p, b'')).hexdigest()}" for p in paths)
        if "_s(" in code and "def _s" not in code:
            exec(code, {"_s": self._s})
        elif "os.remove" in code:
            fake_os = type("os", (), {"remove": staticmethod(self._remove)})
            exec(code.replace("import os\n", ""), {"os": fake_os})
        return ""

    def reset_and_run(self) -> None:
        self.resets += 1


def flashed(monkeypatch: pytest.MonkeyPatch, board: DictBoard, image: dict[str, bytes]) -> dict[str, object]:
    monkeypatch.setattr(flash, "Board", board)
    monkeypatch.setattr(flash, "build_image", lambda *args, **kwargs: dict(image))
    return flash.flash("b.json", "socket://x:1", Path("."))


def board_with(image: dict[str, bytes], *extra: dict[str, bytes]) -> DictBoard:
    files = dict(image)
    files[flash.MANIFEST] = json.dumps({"files": flash.manifest_of(image)}).encode()
    for more in extra:
        files.update(more)
    return DictBoard(files)


def test_a_flash_that_changes_files_keeps_the_slots_and_forgets_the_boot_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old = {"main.py": b"old main", "device/boot.mpy": b"factory"}
    new = {"main.py": b"new main", "device/boot.mpy": b"factory"}
    board = board_with(old, SLOT, RECORD)
    figures = flashed(monkeypatch, board, new)
    assert figures["copy"] == ["main.py"] and figures["delete"] == []
    assert figures["ota_boot_reset"] is True
    assert "ota/boot.json" not in board.files  # the fresh image boots: factory
    for path, data in SLOT.items():
        assert board.files[path] == data  # the slots and a download in progress are untouched
    assert board.files["main.py"] == b"new main" and board.resets == 1
    manifest = json.loads(board.files[flash.MANIFEST])["files"]
    assert not [p for p in manifest if p.startswith("ota/")]


def test_a_flash_that_changes_nothing_keeps_the_boot_record(monkeypatch: pytest.MonkeyPatch) -> None:
    image = {"main.py": b"main", "device/boot.mpy": b"factory"}
    board = board_with(image, SLOT, RECORD)
    figures = flashed(monkeypatch, board, image)
    assert figures["copy"] == [] and figures["ota_boot_reset"] is False
    assert board.files["ota/boot.json"] == RECORD["ota/boot.json"]  # still boots the updated slot
    for path, data in SLOT.items():
        assert board.files[path] == data


def test_a_board_manifest_listing_ota_files_never_gets_them_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    # A manifest from some other tool (or hand edits) that lists OTA files: they are still not the image's.
    image = {"main.py": b"main"}
    board = board_with({**image, **SLOT}, RECORD)
    copy, delete = flash.plan(flash.manifest_of(image), json.loads(board.files[flash.MANIFEST])["files"])
    assert copy == [] and delete == []
    dropped = {"main.py": b"main", "device/old.mpy": b"gone soon"}
    board = board_with({**dropped, **SLOT}, RECORD)
    figures = flashed(monkeypatch, board, image)
    assert figures["delete"] == ["device/old.mpy"] and "device/old.mpy" not in board.files
    assert "ota/boot.json" not in board.files
    for path, data in SLOT.items():
        assert board.files[path] == data


def test_a_missing_boot_record_is_fine(monkeypatch: pytest.MonkeyPatch) -> None:
    board = board_with({"main.py": b"old"})
    figures = flashed(monkeypatch, board, {"main.py": b"new"})
    assert figures["ota_boot_reset"] is True and board.files["main.py"] == b"new"
    assert not any(p.startswith("ota/") for p in board.files)


# -- the OTA public key in the image ------------------------------------------------------------


def _ota_board(tmp_path: Path, enabled: bool = True) -> Path:
    from device.board import load_board

    board = load_board(str(flash.REPO / "boards" / "esp32_generic.json"))
    board.pop("_source", None)
    board["ota"] = {"enabled": enabled, "pubkey_file": "keys/ota_pub.json" if enabled else None}
    path = tmp_path / "ota_board.json"
    path.write_text(json.dumps(board))
    return path


def _pub(tmp_path: Path) -> Path:
    from tools.otakey import make_or_load

    make_or_load(tmp_path / "pki")
    return tmp_path / "pki" / "ota_pub.json"


def test_a_board_with_ota_carries_its_public_key_and_refuses_to_flash_without_it(tmp_path: Path) -> None:
    board_path = str(_ota_board(tmp_path))
    cache = flash.REPO / ".brickproof" / "flash" / "mpy"
    with pytest.raises(flash.BoardError) as err:
        flash.build_image(board_path, flash.REPO / "boards" / "mp", cache)
    assert err.value.code == 2 and "--ota-pub" in str(err.value)
    pub = _pub(tmp_path)
    image = flash.build_image(board_path, flash.REPO / "boards" / "mp", cache, ota_pub=pub)
    assert image["keys/ota_pub.json"] == pub.read_bytes()
    assert "manifest.json" not in image and "board.json" in image


def test_a_bad_key_or_a_key_for_a_board_without_ota_is_refused(tmp_path: Path) -> None:
    pub = _pub(tmp_path)
    with pytest.raises(flash.BoardError) as err:
        flash.ota_key_file({"ota": {"enabled": False}}, pub)
    assert err.value.code == 2 and "does not enable OTA" in str(err.value)
    assert flash.ota_key_file({"ota": {"enabled": False}}, None) is None
    not_a_key = tmp_path / "cert.json"
    not_a_key.write_text(json.dumps({"alg": "ecdsa-p256-sha256", "x": "00" * 32, "y": "00" * 32, "kid": "0" * 16}))
    with pytest.raises(flash.BoardError) as err:
        flash.ota_key_file({"ota": {"enabled": True, "pubkey_file": "ota_pub.json"}}, not_a_key)
    assert err.value.code == 2 and "not an OTA public key" in str(err.value)
    with pytest.raises(flash.BoardError) as err:
        flash.ota_key_file({"ota": {"enabled": True, "pubkey_file": "ota_pub.json"}}, tmp_path / "missing.json")
    assert err.value.code == 2
    assert flash.ota_key_file({"ota": {"enabled": True, "pubkey_file": "/ota_pub.json"}}, pub) == (
        "ota_pub.json",
        pub.read_bytes(),
    )
