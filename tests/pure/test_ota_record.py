"""The boot control record (device/ota/record.py): every boot decision and transition of the contract."""

from device.ota import record
from tests.pure._check import raises


def _all(slot):  # type: ignore[no-untyped-def]
    return True


def _only(*slots):  # type: ignore[no-untyped-def]
    return lambda slot: slot == "factory" or slot in slots


def _on_trial(slot="a", boots=0, booted="factory"):  # type: ignore[no-untyped-def]
    rec = record.start_trial(record.fresh("0.1.0"), slot, "0.2.0", "ab" * 32)
    rec["trial"]["boots"] = boots
    rec["booted"] = booted
    return rec


def test_no_record_boots_factory_and_writes_none() -> None:
    assert record.choose(None, "power", _all) == ("factory", None, "no boot record")


def test_an_unusable_record_boots_factory_and_says_why() -> None:
    for bad in ({}, {"v": 2}, [], "x", dict(record.fresh("0.1.0"), good="c"), dict(record.fresh("0.1.0"), trial=5)):
        slot, new, note = record.choose(bad, "power", _all)
        assert slot == "factory" and new is None and "unreadable" in note, (bad, note)


def test_no_trial_boots_good_and_records_booted() -> None:
    rec = dict(record.fresh("0.2.0"), good="b")
    slot, new, note = record.choose(rec, "power", _all)
    assert slot == "b" and new["booted"] == "b" and note == ""
    assert rec["booted"] == "factory"  # the argument is left alone


def test_a_good_slot_that_is_incomplete_falls_back_to_factory() -> None:
    rec = dict(record.fresh("0.2.0"), good="b", booted="b")
    slot, new, note = record.choose(rec, "power", _only("a"))
    assert slot == "factory" and new["booted"] == "factory" and note == "good slot b incomplete"


def test_unchanged_choice_leaves_an_equal_record() -> None:
    rec = dict(record.fresh("0.2.0"), good="a", booted="a")
    slot, new, _ = record.choose(rec, "soft", _all)
    assert slot == "a" and new == rec


def test_a_trial_boots_its_slot_and_counts_the_boot() -> None:
    rec = _on_trial("a", 0)
    slot, new, note = record.choose(rec, "reset", _all)
    assert slot == "a" and new["trial"]["boots"] == 1 and new["booted"] == "a"
    assert note == "trial boot 1 of 3" and rec["trial"]["boots"] == 0


def test_a_watchdog_reset_or_crash_on_the_trial_boot_rolls_back() -> None:
    for cause, reason in (("wdt", "watchdog reset on trial boot"), ("crash", "crashed on trial boot")):
        slot, new, note = record.choose(_on_trial("a", 1, booted="a"), cause, _all)
        assert slot == "factory" and new["trial"] is None and new["booted"] == "factory"
        assert new["last"] == {
            "event": "rolled_back",
            "slot": "a",
            "version": "0.2.0",
            "reason": reason,
            "bundle": "ab" * 32,
        }
        assert reason in note


def test_a_watchdog_reset_before_the_trial_ran_does_not_roll_back() -> None:
    # boots 0: the watchdog fired in the image before the switch, not in the trial.
    slot, new, _ = record.choose(_on_trial("a", 0, booted="factory"), "wdt", _all)
    assert slot == "a" and new["trial"]["boots"] == 1


def test_power_cuts_during_a_trial_are_retried_up_to_max_trial_boots() -> None:
    rec = _on_trial("b", 0)
    rec["good"] = "a"
    booted = []
    for _ in range(5):
        slot, rec, _note = record.choose(rec, "power", _all)
        booted.append(slot)
    assert booted == ["b", "b", "b", "a", "a"]
    assert rec["last"]["reason"] == "3 trial boots without passing the health gate"


def test_an_incomplete_trial_slot_rolls_back() -> None:
    slot, new, _note = record.choose(_on_trial("a", 0), "power", _only("b"))
    assert slot == "factory" and new["last"]["reason"] == "trial slot incomplete"


def test_rollback_to_an_incomplete_good_slot_boots_factory() -> None:
    rec = _on_trial("a", 3)
    rec["good"] = "b"
    slot, new, note = record.choose(rec, "power", _only("a"))
    assert slot == "factory" and new["good"] == "b" and "good slot b incomplete" in note


def test_confirm_makes_the_trial_good() -> None:
    new = record.confirm(_on_trial("a", 1, booted="a"))
    assert new["good"] == "a" and new["good_version"] == "0.2.0" and new["trial"] is None
    assert new["last"]["event"] == "installed" and new["last"]["slot"] == "a"
    raises(ValueError, record.confirm, record.fresh("0.1.0"))


def test_rollback_and_clear_last() -> None:
    rec = _on_trial("a", 1, booted="a")
    new = record.rollback(rec, "health gate failed: no link")
    assert new["trial"] is None and new["last"]["reason"] == "health gate failed: no link"
    assert rec["trial"] is not None
    assert record.clear_last(new)["last"] is None and new["last"] is not None
    assert record.rollback(record.fresh("0.1.0"), "x") == record.fresh("0.1.0")


def test_start_trial_refuses_factory_and_the_good_slot() -> None:
    raises(ValueError, record.start_trial, record.fresh("0.1.0"), "factory", "0.2.0", "")
    raises(ValueError, record.start_trial, dict(record.fresh("0.1.0"), good="a"), "a", "0.2.0", "")
    new = record.start_trial(record.fresh("0.1.0"), "b", "0.2.0", "cd", max_trial_boots=5)
    assert new["max_trial_boots"] == 5 and new["trial"]["boots"] == 0 and not record.problem(new)
