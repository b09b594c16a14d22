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

A file error while the update is written (a chunk, the staging copy, the
switch) discards the update and gives its space back (``discard``): the
download, temp files and the partly staged slot. It is then refused like a bad
bundle, with ``no_space`` (ENOSPC: the flash is full) or ``io_error`` (any other
OSError), never retried on its own: a full flash must stay usable for the store.
"""

import hashlib

from device.ota import bootsel
from device.ota.bundlefmt import read_head
from device.ota.manifest import BundleError, check_steps
from device.ota.slots import DL_JSON
from device.ota.steps import run
from device.version import parse_version

CHUNK_BYTES = 4096
_BLOCK = 1024
_HEX = "0123456789abcdef"
_ENOSPC = 28  # errno.ENOSPC; MicroPython's OSError carries it as args[0] too


def file_error(exc: OSError) -> BundleError:
    """The refusal for a file error while writing an update: ``no_space`` on a full flash, else ``io_error``."""
    code = exc.args[0] if exc.args else None
    return BundleError("no_space" if code == _ENOSPC else "io_error", str(exc))


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
        self.dropped: tuple | None = None  # (offer, BundleError) of a download resume had to drop

    def _progress(self) -> "dict | None":
        if not self._resumed:
            self.resume()
        return self.slots.dl()

    def resume(self) -> None:
        """Repair the download after a reboot; drop it when it is the bundle already switched to."""
        self._resumed = True
        try:
            progress = self.slots.dl_resume()  # may copy the part file: it needs space too
        except OSError as exc:
            offer = (self.slots.dl() or {}).get("offer")
            self.discard()
            self.dropped = (offer, file_error(exc))
            return
        if progress is None:
            return
        rec = self.slots.record()
        done = []
        if rec is not None:
            done = [(rec.get("trial") or {}).get("bundle"), (rec.get("last") or {}).get("bundle")]
        if progress["offer"].get("bundle") in done:
            self.slots.dl_reset()  # a cut after the switch, before the download was dropped

    def take_dropped(self) -> "tuple | None":
        """``(offer, BundleError)`` once when ``resume`` dropped a download it could not repair, else None."""
        dropped = self.dropped
        self.dropped = None
        return dropped

    def discard(self) -> None:
        """Give back the space of an update that failed: the download, temp files, the inactive slot.

        The inactive slot holds a partly staged copy, or an old image the next
        staging would remove anyway; nothing boots it. Best effort: a removal
        that fails is left to the next offer, which clears these files again.
        """
        files = self.slots.files
        for rel in (DL_JSON, "ota/dl.part", DL_JSON + ".tmp", "ota/dl.part.tmp", bootsel.RECORD + ".tmp"):
            try:
                files.remove(rel)
            except OSError:
                pass
        slot = None if self.slots.trial() is not None else self.slots.inactive()
        if slot is not None:
            try:
                files.rmtree(bootsel.slot_dir(slot))
            except OSError:
                pass

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
        try:
            self.slots.dl_begin(offer)  # replaces (cancels) any other download
        except OSError as exc:
            self.discard()
            err = file_error(exc)
            return False, err.reason + ": " + err.detail
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
        """Store ``data`` when it is the chunk wanted (at the confirmed offset, within the size).

        A file error discards the download and raises BundleError ``no_space``/``io_error``.
        """
        progress = self._progress()
        if progress is None or offset != progress["offset"] or not data:
            return False
        if offset + len(data) > progress["offer"]["size"]:
            return False
        try:
            self.slots.dl_append(offset, data)
        except OSError as exc:
            self.discard()
            raise file_error(exc) from None
        return True

    def finish(self) -> tuple:
        """Verify the whole download, stage it and switch to it -> ``(slot, manifest)``.

        On any BundleError the download is discarded and the error re-raised; a file
        error discards it with the staged slot and raises BundleError ``no_space``/``io_error``.
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
        except OSError as exc:
            self.discard()  # the record was not switched (one atomic write): the slot is garbage
            raise file_error(exc) from None
        try:
            self.slots.dl_reset()
        except OSError:
            pass  # switched already: the next resume drops a download of the bundle switched to
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
