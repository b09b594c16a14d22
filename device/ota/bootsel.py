"""Boot selection: which image to run, decided before any other device code is imported.

The board's main.py (and the host's ``brickproof boot``) call ``select`` first,
then drop the ``device`` modules from ``sys.modules`` and put the chosen slot's
directory at the front of ``sys.path``. So this module imports only the file
layer and the pure record: whatever it imports is loaded from the factory image.
"""

from device.ota import record
from device.ota.otafs import OtaFiles

RECORD = "ota/boot.json"


def slot_dir(slot: str) -> str:
    """The directory of ``slot`` relative to the device root ("" for factory)."""
    return "" if slot == "factory" else "ota/" + slot


def is_complete(files: OtaFiles, slot: str) -> bool:
    """Factory always is; a slot is once its ``bundle.json`` (written last) exists."""
    return slot == "factory" or files.exists(slot_dir(slot) + "/bundle.json")


def read_record(files: OtaFiles) -> tuple:
    """``(rec, note)``: the record or None, and why it was not usable ("" when it was or is absent)."""
    try:
        rec = files.read_json(RECORD)
    except (OSError, ValueError) as exc:
        return None, "boot record unreadable: %s" % (exc,)
    if rec is not None and record.problem(rec):
        return None, "boot record unreadable: " + record.problem(rec)
    return rec, ""


def select(files: OtaFiles, reset_cause: str) -> tuple:
    """Choose the slot to boot -> ``(slot, slot_dir, note)``; the record is written when it changed."""
    rec, note = read_record(files)
    slot, new, why = record.choose(rec, reset_cause, lambda s: is_complete(files, s))
    if new is not None and new != rec:
        files.write_json(RECORD, new)
    return slot, slot_dir(slot), note or why


def crashed_on_trial(files: OtaFiles, reason: str) -> bool:
    """The booted image raised on a trial boot: roll back now (True) so the next boot runs good."""
    rec, _ = read_record(files)
    if rec is None or rec["trial"] is None or rec["booted"] != rec["trial"]["slot"]:
        return False
    files.write_json(RECORD, record.rollback(rec, reason))
    return True
