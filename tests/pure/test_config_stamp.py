"""The profile stamp: a board boots from ``board.ok.json`` while it vouches for the profile, else checks in full."""

import json

from device import config
from device.errors import ConfigError
from device.version import VERSION
from tests.pure._check import raises, repo_path
from tests.pure._tmpdirs import fresh_dir, remove_tree


def _profile_dir(source="boards/esp32_generic.json"):  # type: ignore[no-untyped-def]
    """A fresh directory holding ``board.json``, a copy of ``source``; returns ``(dir, profile path)``."""
    root = fresh_dir("stamp")
    with open(repo_path(source)) as f:
        text = f.read()
    path = root + "/board.json"
    with open(path, "w") as f:
        f.write(text)
    return root, path


def _read(path):  # type: ignore[no-untyped-def]
    with open(path) as f:
        return json.load(f)


class _Counted:
    """Stands in for ``config.load`` and counts the full checks (then does one)."""

    def __init__(self):  # type: ignore[no-untyped-def]
        self.calls = 0
        self.real = config.load

    def __call__(self, path, app_names):  # type: ignore[no-untyped-def]
        self.calls += 1
        return self.real(path, app_names)


def _with_counted(check):  # type: ignore[no-untyped-def]
    counted = _Counted()
    config.load = counted
    try:
        check(counted)
    finally:
        config.load = counted.real


def test_the_first_boot_checks_in_full_and_stamps_the_next_takes_the_stamp():
    root, path = _profile_dir()
    try:

        def check(counted):  # type: ignore[no-untyped-def]
            board, settings = config.load_checked(path)
            assert counted.calls == 1
            stamp = _read(config.stamp_path(path))
            assert config.stamp_path(path) == root + "/board.ok.json"
            assert stamp["version"] == VERSION and stamp["apps"] == ["thermostat"]
            again = config.load_checked(path)
            assert counted.calls == 1  # no second check: the stamp vouched
            assert again == (board, settings)
            expected = counted.real(path, [])[0]
            assert board == expected and settings == config.configure_apps(expected, ["thermostat"])

        _with_counted(check)
    finally:
        remove_tree(root)


def test_an_edited_profile_is_checked_again_and_a_bad_edit_named():
    root, path = _profile_dir()
    try:

        def check(counted):  # type: ignore[no-untyped-def]
            config.load_checked(path)
            data = _read(path)
            data["apps"]["thermostat"]["sensor"] = "no_such_part"
            with open(path, "w") as f:
                json.dump(data, f)
            err = raises(ConfigError, config.load_checked, path)
            assert "thermostat" in str(err) or "sensor" in str(err), err
            assert counted.calls == 2
            data["apps"]["thermostat"]["sensor"] = "room_sensor"
            data["description"] = "edited on the board"
            with open(path, "w") as f:
                json.dump(data, f)
            board, _ = config.load_checked(path)
            assert counted.calls == 3 and board["description"] == "edited on the board"
            config.load_checked(path)
            assert counted.calls == 3  # stamped again

        _with_counted(check)
    finally:
        remove_tree(root)


def test_a_stamp_from_other_firmware_or_apps_or_a_broken_one_means_a_full_check():
    root, path = _profile_dir()
    stamp_path = config.stamp_path(path)
    try:

        def check(counted):  # type: ignore[no-untyped-def]
            config.load_checked(path)
            good = _read(stamp_path)
            bad_stamps = []
            other = dict(good)
            other["version"] = "0.0.1"
            bad_stamps.append(json.dumps(other))
            other = dict(good)
            other["format"] = 99
            bad_stamps.append(json.dumps(other))
            other = dict(good)
            other["settings"] = {}
            bad_stamps.append(json.dumps(other))
            bad_stamps.append('{"format": 1, "truncated')
            bad_stamps.append("[]")
            for n, text in enumerate(bad_stamps):
                with open(stamp_path, "w") as f:
                    f.write(text)
                board, _ = config.load_checked(path)
                assert counted.calls == n + 2, text
                assert board["name"] == "esp32_generic"
                assert _read(stamp_path) == good  # the full check stamped it afresh
            # asked for no apps: the stamp is for the thermostat, so a full check for none
            _, settings = config.load_checked(path, [])
            assert settings == {} and counted.calls == len(bad_stamps) + 2

        _with_counted(check)
    finally:
        remove_tree(root)


def test_a_stamp_that_cannot_be_written_is_no_failure():
    root, path = _profile_dir()
    try:
        import os

        os.mkdir(config.stamp_path(path) + ".tmp")  # a directory where the temp file would go

        def check(counted):  # type: ignore[no-untyped-def]
            board, _ = config.load_checked(path)
            assert board["name"] == "esp32_generic"
            config.load_checked(path)
            assert counted.calls == 2  # nothing stamped: checked in full each time

        _with_counted(check)
    finally:
        remove_tree(root)


def test_a_missing_profile_is_the_config_error_of_a_full_check():
    root = fresh_dir("stamp")
    try:
        err = raises(ConfigError, config.load_checked, root + "/board.json")
        assert "board.json" in str(err)
    finally:
        remove_tree(root)
