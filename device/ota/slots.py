"""The two update slots, the download file and the boot record, as the updater and agent use them.

Layout (relative to the device root; see ``otafs`` for the durability model):

    ota/boot.json   the boot control record (``record``; written atomically)
    ota/a/ ota/b/   update slots: the bundle's files at their manifest paths, and
                    ``bundle.json`` (the verified manifest) written LAST: a slot is
                    complete iff it exists, so a cut while staging leaves an
                    incomplete slot the boot selector never boots
    ota/dl.part     the bundle being downloaded (appended chunk by chunk)
    ota/dl.json     {"offer": {...}, "offset": bytes confirmed}; written after the
                    chunk's bytes are synced, so the part file is never SHORTER
                    than the confirmed offset; ``dl_resume`` cuts a longer one back

The inactive slot is the first of "a", "b" that is neither booted nor good
(None while both are: a trial runs, or a rollback waits for its reset).
"""

import hashlib

from device.ota import bootsel, record
from device.ota.manifest import BundleError, entries
from device.ota.steps import run

DL_PART = "ota/dl.part"
DL_JSON = "ota/dl.json"
_BLOCK = 1024  # copy/hash block: small, a 128 KiB board stages files of any size


def _hex(digest: bytes) -> str:
    return "".join("%02x" % b for b in digest)


class Slots:
    """``files``: an ``OtaFiles``; ``running_version`` seeds a record when there is none (factory)."""

    def __init__(self, files, running_version: str = "0.0.0", max_trial_boots=None) -> None:  # type: ignore[no-untyped-def]
        self.files = files
        self.running_version = running_version
        self.max_trial_boots = max_trial_boots

    # -- the boot record ----------------------------------------------------------------------

    def record(self) -> "dict | None":
        """The boot record, or None (none yet, or unreadable: the boot selector booted factory)."""
        return bootsel.read_record(self.files)[0]

    def _base(self) -> dict:
        rec = self.record()
        if rec is None:
            rec = record.fresh(self.running_version)
            if self.max_trial_boots is not None:
                rec["max_trial_boots"] = self.max_trial_boots
        return rec

    def booted(self) -> str:
        rec = self.record()
        return "factory" if rec is None else rec["booted"]

    def trial(self) -> "dict | None":
        """The record's trial dict, or None."""
        rec = self.record()
        return None if rec is None else rec["trial"]

    def inactive(self) -> "str | None":
        rec = self.record()
        taken = ("factory", "factory") if rec is None else (rec["booted"], rec["good"])
        for slot in ("a", "b"):
            if slot not in taken:
                return slot
        return None

    def complete(self, slot: str) -> bool:
        return bootsel.is_complete(self.files, slot)

    def switch(self, slot: str, version: str, bundle: str) -> None:
        """Boot ``slot`` (complete) on trial at the next boot: one atomic record write."""
        if not self.complete(slot):
            raise ValueError("slot %s is not complete" % slot)
        self.files.makedirs("ota")
        new = record.start_trial(self._base(), slot, version, bundle, self.max_trial_boots)
        self.files.write_json(bootsel.RECORD, new)

    def confirm(self) -> bool:
        """The booted trial passed its health gate: it becomes good. False when no trial is booted."""
        rec = self.record()
        if rec is None or rec["trial"] is None or rec["booted"] != rec["trial"]["slot"]:
            return False
        self.files.write_json(bootsel.RECORD, record.confirm(rec))
        return True

    def rollback(self, reason: str) -> bool:
        """Give up the trial (the caller then resets). False when there is none."""
        rec = self.record()
        if rec is None or rec["trial"] is None:
            return False
        self.files.write_json(bootsel.RECORD, record.rollback(rec, reason))
        return True

    def take_last(self) -> "dict | None":
        """The record's ``last`` outcome (or None), left in place: ``clear_last`` once it is reported."""
        rec = self.record()
        return None if rec is None else rec["last"]

    def clear_last(self) -> None:
        rec = self.record()
        if rec is not None and rec["last"] is not None:
            self.files.write_json(bootsel.RECORD, record.clear_last(rec))

    # -- the download -------------------------------------------------------------------------

    def dl(self) -> "dict | None":
        """``{"offer", "offset"}`` of the download in progress, or None."""
        try:
            progress = self.files.read_json(DL_JSON)
        except ValueError:
            return None  # atomic writes make this a damaged medium: start over
        if not isinstance(progress, dict) or not isinstance(progress.get("offer"), dict):
            return None
        if not isinstance(progress.get("offset"), int):
            return None
        return progress

    def dl_begin(self, offer: dict) -> None:
        """Start downloading ``offer`` from byte 0 (any earlier download is dropped)."""
        self.dl_reset()
        self.files.makedirs("ota")
        self.files.open_write(DL_PART).close()
        self.files.write_json(DL_JSON, {"offer": offer, "offset": 0})

    def dl_append(self, offset: int, data) -> int:  # type: ignore[no-untyped-def]
        """Append ``data`` at ``offset`` (must be the confirmed offset) -> the new confirmed offset."""
        progress = self.dl()
        if progress is None:
            raise ValueError("no download in progress")
        if offset != progress["offset"]:
            raise ValueError("chunk at %d, confirmed offset is %d" % (offset, progress["offset"]))
        if offset + len(data) > progress["offer"]["size"]:
            raise ValueError("chunk runs past the bundle size")
        if self.files.size(DL_PART) != offset:
            progress = self.dl_resume()  # a cut left the part file longer: cut it back first
            if progress is None or progress["offset"] != offset:
                raise ValueError("download changed under the chunk")
        handle = self.files.open_append(DL_PART)
        try:
            handle.write(data)
            handle.sync()
        finally:
            handle.close()
        progress["offset"] = offset + len(data)
        self.files.write_json(DL_JSON, progress)
        return progress["offset"]

    def dl_reset(self) -> None:
        """Drop the download (progress first: a cut then leaves a stray part ``dl_resume`` removes)."""
        self.files.remove(DL_JSON)
        self.files.remove(DL_PART)
        self.files.remove(DL_PART + ".tmp")

    def dl_resume(self) -> "dict | None":
        """Repair the download after a power cut -> its progress (None when there is none)."""
        progress = self.dl()
        self.files.remove(DL_JSON + ".tmp")
        self.files.remove(DL_PART + ".tmp")
        if progress is None:
            self.files.remove(DL_JSON)
            self.files.remove(DL_PART)
            return None
        size = self.files.size(DL_PART)
        offset = progress["offset"]
        if size is None:
            self.files.open_write(DL_PART).close()
            size = 0
        if size > offset:
            self._cut_part(offset)
        elif size < offset:
            progress["offset"] = size
            self.files.write_json(DL_JSON, progress)
        return progress

    def _cut_part(self, keep: int) -> None:
        # MicroPython has no truncate: copy the confirmed prefix, then rename it over.
        tmp = DL_PART + ".tmp"
        src = self.files.open_read(DL_PART)
        try:
            out = self.files.open_write(tmp)
            try:
                left = keep
                while left > 0:
                    block = src.read(min(_BLOCK, left))
                    if not block:
                        break
                    out.write(block)
                    left -= len(block)
                out.sync()
            finally:
                out.close()
        finally:
            src.close()
        self.files.rename(tmp, DL_PART)

    def dl_open(self):  # type: ignore[no-untyped-def]
        return self.files.open_read(DL_PART)

    # -- staging ------------------------------------------------------------------------------

    def stage(self, manifest: dict, f, payload_offset: int) -> str:  # type: ignore[no-untyped-def]
        """Write the bundle in ``f`` (checked ``manifest``) into the inactive slot -> the slot.

        The slot's ``bundle.json`` goes FIRST (the slot is incomplete from then on)
        and comes back LAST, after every file was written, synced and its sha256
        matched. BundleError "bad_hash"/"truncated" when the payload does not match.
        """
        return run(self.stage_steps(manifest, f, payload_offset))  # type: ignore[no-any-return]

    def stage_steps(self, manifest: dict, f, payload_offset: int):  # type: ignore[no-untyped-def]
        """``stage`` as a step generator (``device.ota.steps``): yields after every block copied."""
        slot = self.inactive()
        if slot is None:
            raise ValueError("no inactive slot: a trial or a rollback is pending")
        where = bootsel.slot_dir(slot)
        self.files.remove(where + "/bundle.json")
        self.files.rmtree(where)
        self.files.makedirs(where)
        try:
            for path, offset, size, digest in entries(manifest):
                got = yield from self._copy_file(f, payload_offset + offset, size, where + "/" + path)
                if got != digest:
                    raise BundleError("bad_hash", "%s: sha256 %s, manifest says %s" % (path, got, digest))
        except BundleError:
            self.files.rmtree(where)
            raise
        self.files.write_json(where + "/bundle.json", manifest)
        return slot

    def _copy_file(self, f, start: int, size: int, dst: str):  # type: ignore[no-untyped-def]
        """Step generator: copy ``size`` bytes from ``start`` in ``f`` to ``dst``, synced; returns their sha256 hex."""
        self.files.ensure_parent(dst)
        f.seek(start)
        digest = hashlib.sha256()
        out = self.files.open_write(dst)
        try:
            left = size
            while left > 0:
                block = f.read(min(_BLOCK, left))
                if not block:
                    raise BundleError("truncated", "payload ends inside " + dst)
                digest.update(block)
                out.write(block)
                left -= len(block)
                yield
            out.sync()
        finally:
            out.close()
        return _hex(digest.digest())
