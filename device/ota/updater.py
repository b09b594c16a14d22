"""The update state machine, free of any network: offer -> chunks -> finish (verify, stage, switch).

The OTA agent drives it from the device task (chunks arrive over MQTT); the
``ota`` torture harness drives it with a power cut at every file operation.
All state lives in files (``slots``), so after any reboot a new ``Updater``
carries on where the last one stopped: the first call repairs the download
(``Slots.dl_resume``) and drops one that was already switched to.

    u = Updater(slots, pub, board_name, running_version, target, max_bytes)
    u.offer({"bundle": sha256hex, "size": n, "version": "0.2.0"}) -> (True, "accepted")
    while u.want(): off, n = u.want(); ...; u.chunk(off, data)
    slot, manifest = u.finish()      # BundleError: download discarded, error re-raised

Refusals at offer time: ``bad_format`` (the offer itself), ``same_version``,
``downgrade``, ``too_big`` (reason codes of ``manifest.REASONS``) and ``busy``
(a trial or a rollback is pending: no free slot). The signed manifest, not the
offer, is what finally decides (``manifest.check`` in ``finish``).
"""

import hashlib

from device.ota.bundlefmt import read_head
from device.ota.manifest import BundleError, check_steps
from device.ota.steps import run
from device.version import parse_version

CHUNK_BYTES = 4096
_BLOCK = 1024
_HEX = "0123456789abcdef"


def _hex(digest: bytes) -> str:
    return "".join("%02x" % b for b in digest)


def offer_problem(o) -> str:  # type: ignore[no-untyped-def]
    """Why ``o`` is not a well-formed offer ("" when it is)."""
    if not isinstance(o, dict):
        return "offer is not an object"
    bundle = o.get("bundle")
    if not isinstance(bundle, str) or len(bundle) != 64 or any(c not in _HEX for c in bundle):
        return "offer bundle is not a sha256 hex digest"
    size = o.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        return "offer size is not a positive count"
    try:
        parse_version(o.get("version"))
    except ValueError as exc:
        return "offer " + str(exc)
    return ""


class Updater:
    def __init__(  # type: ignore[no-untyped-def]
        self, slots, pub: dict, board_name: str, running_version: str, target: str, max_bytes, chunk_bytes=CHUNK_BYTES
    ) -> None:
        self.slots = slots
        self.pub = pub
        self.board_name = board_name
        self.running_version = running_version
        self.target = target
        self.max_bytes = max_bytes
        self.chunk_bytes = chunk_bytes
        self._resumed = False

    def _progress(self) -> "dict | None":
        if not self._resumed:
            self.resume()
        return self.slots.dl()

    def resume(self) -> None:
        """Repair the download after a reboot; drop it when it is the bundle already switched to."""
        self._resumed = True
        progress = self.slots.dl_resume()
        if progress is None:
            return
        rec = self.slots.record()
        done = []
        if rec is not None:
            done = [(rec.get("trial") or {}).get("bundle"), (rec.get("last") or {}).get("bundle")]
        if progress["offer"].get("bundle") in done:
            self.slots.dl_reset()  # a cut after the switch, before the download was dropped

    def state(self) -> str:
        """ "trial" (an update waits for its health gate), "ready" (all bytes here), "downloading" or "idle"."""
        if self.slots.trial() is not None:
            return "trial"
        progress = self._progress()
        if progress is None:
            return "idle"
        return "ready" if progress["offset"] >= progress["offer"]["size"] else "downloading"

    def offer(self, o) -> tuple:  # type: ignore[no-untyped-def]
        """Take offer ``o`` -> ``(accepted, reason)``. The same bundle again resumes at its offset."""
        why = offer_problem(o)
        if why:
            return False, "bad_format: " + why
        new = parse_version(o["version"])
        running = parse_version(self.running_version)
        if new == running:
            return False, "same_version"
        if new < running:
            return False, "downgrade"
        if self.max_bytes is not None and o["size"] > self.max_bytes:
            return False, "too_big"
        if self.slots.trial() is not None or self.slots.inactive() is None:
            return False, "busy"
        progress = self._progress()
        if progress is not None and progress["offer"].get("bundle") == o["bundle"]:
            if progress["offer"].get("size") == o["size"]:
                return True, "resumed at %d" % progress["offset"]
        offer = {"bundle": o["bundle"], "size": o["size"], "version": o["version"]}
        self.slots.dl_begin(offer)  # replaces (cancels) any other download
        return True, "accepted"

    def offered(self) -> "dict | None":
        """The offer being downloaded, or None."""
        progress = self._progress()
        return None if progress is None else progress["offer"]

    def want(self) -> "tuple | None":
        """``(offset, n)`` of the next chunk to request, or None (nothing to download, or all here)."""
        progress = self._progress()
        if progress is None:
            return None
        offset = progress["offset"]
        left = progress["offer"]["size"] - offset
        if left <= 0:
            return None
        return offset, min(self.chunk_bytes, left)

    def chunk(self, offset: int, data) -> bool:  # type: ignore[no-untyped-def]
        """Store ``data`` when it is the chunk wanted (at the confirmed offset, within the size)."""
        progress = self._progress()
        if progress is None or offset != progress["offset"] or not data:
            return False
        if offset + len(data) > progress["offer"]["size"]:
            return False
        self.slots.dl_append(offset, data)
        return True

    def finish(self) -> tuple:
        """Verify the whole download, stage it and switch to it -> ``(slot, manifest)``.

        On any BundleError the download is discarded and the error re-raised.
        """
        return run(self.finish_steps())  # type: ignore[no-any-return]

    def finish_steps(self):  # type: ignore[no-untyped-def]
        """``finish`` as a step generator (``device.ota.steps``): the OTA task runs it between ticks."""
        progress = self._progress()
        if progress is None:
            raise ValueError("no download to finish")
        offer = progress["offer"]
        try:
            if progress["offset"] < offer["size"]:
                raise BundleError("truncated", "%d of %d bytes downloaded" % (progress["offset"], offer["size"]))
            f = self.slots.dl_open()
            try:
                manifest, payload_offset = yield from self._verify(f, offer)
                slot = yield from self.slots.stage_steps(manifest, f, payload_offset)
            finally:
                f.close()
            self.slots.switch(slot, manifest["version"], offer["bundle"])
        except BundleError:
            self.slots.dl_reset()
            raise
        self.slots.dl_reset()
        return slot, manifest

    def _verify(self, f, offer: dict):  # type: ignore[no-untyped-def]
        """Step generator returning ``(manifest, payload_offset)`` of the bundle in ``f``; BundleError otherwise."""
        digest = hashlib.sha256()
        total = 0
        f.seek(0)
        while True:
            block = f.read(_BLOCK)
            if not block:
                break
            digest.update(block)
            total += len(block)
            yield
        if total < offer["size"]:
            raise BundleError("truncated", "bundle file has %d of %d bytes" % (total, offer["size"]))
        if total > offer["size"] or _hex(digest.digest()) != offer["bundle"]:
            raise BundleError("bad_hash", "bundle file sha256 is not the offered " + offer["bundle"])
        manifest_bytes, sig, payload_offset = read_head(f)
        manifest = yield from check_steps(
            manifest_bytes, sig, self.pub, self.board_name, self.target, self.running_version, self.max_bytes
        )
        end = payload_offset + manifest["payload_bytes"]
        if end > total:
            raise BundleError("truncated", "payload ends at %d, file has %d bytes" % (end, total))
        if end < total:
            raise BundleError("bad_format", "%d bytes after the payload" % (total - end))
        return manifest, payload_offset
