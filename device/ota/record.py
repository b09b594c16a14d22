"""The boot control record (``ota/boot.json``) and its transitions: pure functions, no I/O.

    {"v": 1, "good": slot, "good_version": "N.N.N", "booted": slot,
     "trial": None | {"slot", "version", "bundle", "boots"},
     "last": None | {"event": "installed"|"rolled_back", "slot", "version", "reason", "bundle"},
     "max_trial_boots": 3}

Slots are "factory" (the flashed image, always complete), "a" and "b". Every
transition returns a NEW dict and leaves its argument alone, so a caller can
compare old and new and write the record only when it changed.

``choose`` is the boot decision (run by the boot selector before any device
code is imported). A trial slot is booted at most ``max_trial_boots`` times;
a watchdog reset or a crash during a trial boot, or a trial slot that is not
complete, rolls back to ``good`` at once. ``good`` that is not complete falls
back to factory, the floor no update can damage.
"""

SLOTS = ("factory", "a", "b")
CAUSES = ("power", "reset", "soft", "wdt", "crash")
MAX_TRIAL_BOOTS = 3
_CRASH_REASONS = {"wdt": "watchdog reset on trial boot", "crash": "crashed on trial boot"}


def fresh(good_version: str, max_trial_boots: int = MAX_TRIAL_BOOTS) -> dict:
    """The record of a device running its factory image and nothing else."""
    return {
        "v": 1,
        "good": "factory",
        "good_version": good_version,
        "booted": "factory",
        "trial": None,
        "last": None,
        "max_trial_boots": max_trial_boots,
    }


def problem(rec) -> str:  # type: ignore[no-untyped-def]
    """Why ``rec`` is not a usable record ("" when it is)."""
    if not isinstance(rec, dict) or rec.get("v") != 1:
        return "not a version 1 record"
    if rec.get("good") not in SLOTS or rec.get("booted") not in SLOTS:
        return "bad good/booted slot"
    if not isinstance(rec.get("good_version"), str):
        return "bad good_version"
    boots = rec.get("max_trial_boots")
    if not isinstance(boots, int) or boots < 1:
        return "bad max_trial_boots"
    trial = rec.get("trial")
    if trial is not None:
        if not isinstance(trial, dict) or trial.get("slot") not in ("a", "b"):
            return "bad trial"
        if not isinstance(trial.get("boots"), int) or not isinstance(trial.get("version"), str):
            return "bad trial"
    last = rec.get("last")
    if last is not None and not isinstance(last, dict):
        return "bad last"
    return ""


def _copy(rec: dict) -> dict:
    new = dict(rec)
    if new.get("trial") is not None:
        new["trial"] = dict(new["trial"])
    if new.get("last") is not None:
        new["last"] = dict(new["last"])
    return new


def start_trial(rec: dict, slot: str, version: str, bundle: str, max_trial_boots=None) -> dict:  # type: ignore[no-untyped-def]
    """Boot ``slot`` (complete, holding ``version`` from bundle sha ``bundle``) next, on trial."""
    if slot not in ("a", "b"):
        raise ValueError("trial slot must be a or b, got %r" % (slot,))
    if slot == rec["good"]:
        raise ValueError("slot %s holds the good image" % slot)
    new = _copy(rec)
    new["trial"] = {"slot": slot, "version": version, "bundle": bundle, "boots": 0}
    if max_trial_boots is not None:
        new["max_trial_boots"] = max_trial_boots
    return new


def confirm(rec: dict) -> dict:
    """The trial passed its health gate: it becomes the good image."""
    trial = rec.get("trial")
    if trial is None:
        raise ValueError("no trial to confirm")
    new = _copy(rec)
    new["good"] = trial["slot"]
    new["good_version"] = trial["version"]
    new["trial"] = None
    new["last"] = _last("installed", trial, "")
    return new


def rollback(rec: dict, reason: str) -> dict:
    """Give up the trial: the next boot runs ``good`` again. No trial: unchanged."""
    trial = rec.get("trial")
    if trial is None:
        return _copy(rec)
    new = _copy(rec)
    new["trial"] = None
    new["last"] = _last("rolled_back", trial, reason)
    return new


def clear_last(rec: dict) -> dict:
    new = _copy(rec)
    new["last"] = None
    return new


def _last(event: str, trial: dict, reason: str) -> dict:
    return {
        "event": event,
        "slot": trial["slot"],
        "version": trial["version"],
        "reason": reason,
        "bundle": trial.get("bundle"),
    }


def choose(rec, reset_cause: str, complete) -> tuple:  # type: ignore[no-untyped-def]
    """The slot to boot -> ``(slot, new_rec, note)``; ``complete(slot)`` says whether a slot is whole.

    ``rec`` None (no record) boots factory and keeps no record (``new_rec`` None).
    """
    if rec is None:
        return "factory", None, "no boot record"
    why = problem(rec)
    if why:
        return "factory", None, "boot record unreadable: " + why
    trial = rec["trial"]
    note = ""
    if trial is not None:
        slot = trial["slot"]
        reason = ""
        if rec["booted"] == slot and trial["boots"] >= 1 and reset_cause in _CRASH_REASONS:
            reason = _CRASH_REASONS[reset_cause]
        elif trial["boots"] >= rec["max_trial_boots"]:
            reason = "%d trial boots without passing the health gate" % trial["boots"]
        elif not complete(slot):
            reason = "trial slot incomplete"
        if not reason:
            new = _copy(rec)
            new["trial"]["boots"] = trial["boots"] + 1
            new["booted"] = slot
            return slot, new, "trial boot %d of %d" % (trial["boots"] + 1, rec["max_trial_boots"])
        new = rollback(rec, reason)
        note = "rolled back: " + reason
    else:
        new = _copy(rec)
    slot = new["good"]
    if not complete(slot):
        note = (note + "; " if note else "") + "good slot %s incomplete" % slot
        slot = "factory"
    new["booted"] = slot
    return slot, new, note
