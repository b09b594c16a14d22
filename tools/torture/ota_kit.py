"""Pieces of the ``ota`` harness: a power-cutting file layer, small signed bundles, a device on files.

* ``CutFiles``: ``device.ota.otafs.OtaFiles`` that loses power at mutating op
  ``at`` (that op does not happen, nor any later one), optionally tearing it
  when it is a write (half its bytes land). Syncs skip the real fsync: the
  model is "an op that completed is durable", the power cut is simulated.
* ``Kit``: a signing key, a tiny source tree and signed bundles made with
  ``tools.bundle`` / ``tools.otakey`` (plus hand-made bad ones), in a temp dir.
* ``Device``: one device root driven through ``Slots``/``Updater``/``bootsel``
  exactly as the agent and the boot path do, with the checks the harness
  applies to every boot (the booted slot is complete, its bundle.json is a
  manifest we signed, every file hashes to it, and it is no downgrade).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from device.ota import bootsel, bundlefmt
from device.ota.otafs import OtaFiles, PowerCut
from device.ota.slots import Slots
from device.ota.updater import Updater
from device.version import VERSION, parse_version

BOARD = "host_sim"
TARGET = "py"
MAX_BYTES = 1 << 20


class CutFiles(OtaFiles):
    """Files that lose power at op ``at`` (None: never); ``ops`` lists ``(kind, rel)`` of ops done."""

    def __init__(self, root: str, at: int | None = None, tear: bool = False) -> None:
        super().__init__(root)
        self.at = at
        self.tear = tear
        self.ops: list[tuple[str, str]] = []
        self.cut = False

    def _op(self, kind: str, rel: str) -> None:
        if self.cut or (self.at is not None and len(self.ops) >= self.at):
            self.cut = True
            raise PowerCut()
        self.ops.append((kind, rel))

    def _write(self, f: Any, rel: str, data: Any) -> None:
        if self.tear and not self.cut and self.at is not None and len(self.ops) == self.at:
            f.write(bytes(data[: len(data) // 2]))  # the write in flight: half of it landed
        super()._write(f, rel, data)

    def _sync(self, f: Any, rel: str) -> None:
        self._op("sync", rel)
        f.flush()

    def _sync_dir(self, directory: str) -> None:
        pass  # the simulated medium keeps a finished rename; the real fsync would only slow the sweep


def bump(version: str, minor: int) -> str:
    major, mid, _ = parse_version(version)
    return "%d.%d.0" % (major, mid + minor)


def _tree(root: Path, version: str) -> None:
    """A small device/ + hw/ tree (a few files of some hundred bytes, so a bundle has many chunks)."""
    for rel, n in (("device/__init__.py", 3), ("device/app.py", 9), ("device/core/law.py", 14), ("hw/x.py", 6)):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = ['"""%s of version %s."""' % (rel, version)]
        lines += ["VALUE_%d = %r" % (i, hashlib.sha256(("%s%d" % (rel, i)).encode()).hexdigest()) for i in range(n)]
        path.write_text("\n".join(lines) + "\n")


class Bundle:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = path.read_bytes()
        manifest_bytes, _, _ = bundlefmt.read_head(_Reader(self.data))
        self.manifest = json.loads(manifest_bytes)
        self.version = self.manifest["version"]
        self.offer = {"bundle": hashlib.sha256(self.data).hexdigest(), "size": len(self.data), "version": self.version}


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def seek(self, pos: int) -> None:
        self.pos = pos

    def read(self, n: int = -1) -> bytes:
        end = len(self.data) if n < 0 else self.pos + n
        out = self.data[self.pos : end]
        self.pos += len(out)
        return out


class Kit:
    """Keys and bundles under ``work`` (a temp dir): ``good`` (newer, signed) and ``bad`` (each refused)."""

    def __init__(self, work: Path) -> None:
        from tools import otakey
        from tools.bundle import build_bundle

        self.work = work
        key_path = otakey.make_or_load(work / "keys")
        self.pub = json.loads((work / "keys" / otakey.PUBLIC_KEY).read_text())
        self.key = otakey.load_private(key_path)
        self.other_key = otakey.load_private(otakey.make_or_load(work / "other_keys"))
        self.factory_version = VERSION
        self.good: dict[str, Bundle] = {}
        for name, minor in (("v2", 1), ("v3", 2), ("v4", 3)):
            version = bump(VERSION, minor)
            src = work / ("src_" + name)
            _tree(src, version)
            out = work / (name + ".bpota")
            build_bundle(BOARD, version, key_path, out, target=TARGET, src=src)
            self.good[name] = Bundle(out)
        self.signed = [b.manifest for b in self.good.values()]
        self._files = [(rel, (work / "src_v2" / rel).read_bytes()) for rel, _, _ in self.good["v2"].manifest["files"]]

    def make(self, name: str, version: str, **how: Any) -> Bundle:
        """A bundle of the v2 files, varied by ``how``: key, alg, board, target, flip_sig, flip_payload."""
        from tools import otakey
        from tools.bundle import manifest_bytes

        key = how.get("key", self.key)
        kid = otakey.pub_dict(key)["kid"]
        head = manifest_bytes(
            self._files,
            how.get("board", BOARD),
            how.get("target", TARGET),
            version,
            kid,
            alg=how.get("alg", "ecdsa-p256-sha256"),
        )
        sig = bytearray(otakey.sign(key, head))
        if how.get("flip_sig"):
            sig[10] ^= 0x01
        payload = bytearray(b"".join(d for _, d in self._files))
        if how.get("flip_payload"):
            payload[len(payload) // 2] ^= 0x20
        path = self.work / (name + ".bpota")
        path.write_bytes(bundlefmt.encode_head(head, bytes(sig)) + bytes(payload))
        return Bundle(path)


def fresh_root(path: Path) -> str:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return str(path)


class Device:
    """One device root: update steps and the per-boot checks. ``files`` may cut power (``CutFiles``).

    ``slots_cls``: the ``Slots`` the updater and the boot repair use (tests seed bugs in a subclass).
    """

    slots_cls: Any = Slots

    def __init__(self, files: OtaFiles, kit: Kit, chunk_bytes: int) -> None:
        self.files = files
        self.kit = kit
        self.chunk_bytes = chunk_bytes

    def running_version(self) -> str:
        slot = Slots(self.files).booted()
        if slot == "factory":
            return self.kit.factory_version
        manifest = self.files.read_json(bootsel.slot_dir(slot) + "/bundle.json")
        return str(manifest["version"]) if manifest else self.kit.factory_version

    def updater(self) -> Updater:
        running = self.running_version()
        return Updater(
            self.slots_cls(self.files, running), self.kit.pub, BOARD, running, TARGET, MAX_BYTES, self.chunk_bytes
        )

    def download(self, updater: Updater, bundle: Bundle, stop_after: int | None = None) -> int:
        """Feed the chunks ``updater`` wants (at most ``stop_after``) -> chunks stored."""
        stored = 0
        for _ in range(bundle.offer["size"] // max(1, self.chunk_bytes) + 2):
            want = updater.want()
            if want is None or (stop_after is not None and stored >= stop_after):
                break
            off, n = want
            assert updater.chunk(off, bundle.data[off : off + n])
            stored += 1
        return stored

    def install(self, bundle: Bundle) -> str:
        """Offer, download and finish ``bundle`` -> the slot switched to (trial on the next boot)."""
        updater = self.updater()
        accepted, why = updater.offer(bundle.offer)
        if not accepted:
            raise AssertionError("offer of %s refused: %s" % (bundle.version, why))
        self.download(updater, bundle)
        slot, _ = updater.finish()
        return str(slot)

    def reboot(self, cause: str) -> str:
        """What a boot does before the device code: repair the download, select the slot."""
        self.slots_cls(self.files).dl_resume()
        return str(bootsel.select(self.files, cause)[0])

    def boot_problem(self, slot: str, floor: str) -> str:
        """Why booting ``slot`` is wrong ("" when it is fine): incomplete, unsigned, bad file, downgrade."""
        if slot == "factory":
            version = self.kit.factory_version
        else:
            where = bootsel.slot_dir(slot)
            manifest = self.files.read_json(where + "/bundle.json")
            if manifest is None:
                return "booted incomplete slot " + slot
            if manifest not in self.kit.signed:
                return "booted slot %s with a manifest nobody signed" % slot
            for rel, size, digest in manifest["files"]:
                path = os.path.join(self.files.root, where, rel)
                try:
                    data = Path(path).read_bytes()
                except OSError:
                    return "slot %s misses %s" % (slot, rel)
                if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
                    return "slot %s file %s does not match its manifest" % (slot, rel)
            version = manifest["version"]
        if parse_version(version) < parse_version(floor):
            return "booted %s, older than the installed %s" % (version, floor)
        return ""
