"""Boot selection on real files (device/ota/bootsel.py, otafs.py), under a fresh /tmp dir per test."""

from device.ota import bootsel, record
from device.ota.otafs import OtaFiles, PowerCut
from tests.pure._ota_support import with_root

_with_files = with_root("bootsel", OtaFiles)


def _complete(files, slot, version="0.2.0"):  # type: ignore[no-untyped-def]
    files.makedirs("ota/" + slot + "/device")
    files.write_json("ota/" + slot + "/bundle.json", {"version": version})


@_with_files
def test_no_record_boots_factory_and_creates_nothing(files) -> None:  # type: ignore[no-untyped-def]
    assert bootsel.select(files, "power") == ("factory", "", "no boot record")
    assert files.listdir("") == []


@_with_files
def test_a_trial_is_booted_then_rolled_back_after_a_crash(files) -> None:  # type: ignore[no-untyped-def]
    _complete(files, "a")
    files.write_json(bootsel.RECORD, record.start_trial(record.fresh("0.1.0"), "a", "0.2.0", "ff" * 32))
    assert bootsel.select(files, "power") == ("a", "ota/a", "trial boot 1 of 3")
    assert files.read_json(bootsel.RECORD)["booted"] == "a"
    slot, where, note = bootsel.select(files, "crash")
    assert (slot, where) == ("factory", "") and note == "rolled back: crashed on trial boot"
    rec = files.read_json(bootsel.RECORD)
    assert rec["trial"] is None and rec["last"]["event"] == "rolled_back"


@_with_files
def test_crashed_on_trial_rolls_back_only_a_booted_trial(files) -> None:  # type: ignore[no-untyped-def]
    _complete(files, "b")
    files.write_json(bootsel.RECORD, record.start_trial(record.fresh("0.1.0"), "b", "0.2.0", "ee" * 32))
    assert not bootsel.crashed_on_trial(files, "raised before the switch")  # trial not booted yet
    assert bootsel.select(files, "reset")[0] == "b"
    assert bootsel.crashed_on_trial(files, "ValueError in boot")
    assert files.read_json(bootsel.RECORD)["last"]["reason"] == "ValueError in boot"
    assert bootsel.select(files, "reset")[0] == "factory"
    assert not bootsel.crashed_on_trial(files, "again")


@_with_files
def test_an_incomplete_slot_is_never_booted(files) -> None:  # type: ignore[no-untyped-def]
    files.makedirs("ota/a/device")  # files but no bundle.json: staging was cut
    files.write_json(bootsel.RECORD, dict(record.fresh("0.2.0"), good="a", booted="a"))
    assert bootsel.select(files, "power") == ("factory", "", "good slot a incomplete")


@_with_files
def test_a_corrupt_record_boots_factory(files) -> None:  # type: ignore[no-untyped-def]
    files.makedirs("ota")
    handle = files.open_write(bootsel.RECORD)
    handle.write(b'{"v": 1, "good": ')
    handle.close()
    slot, _where, note = bootsel.select(files, "power")
    assert slot == "factory" and note.startswith("boot record unreadable")
    files.write_json(bootsel.RECORD, {"v": 1})
    assert bootsel.select(files, "power")[2].startswith("boot record unreadable")


@_with_files
def test_the_record_is_written_only_when_it_changed(files) -> None:  # type: ignore[no-untyped-def]
    _complete(files, "a")
    files.write_json(bootsel.RECORD, dict(record.fresh("0.2.0"), good="a", booted="a"))
    ops = []

    class Counting(OtaFiles):
        def _op(self, kind: str, rel: str) -> None:
            ops.append(kind)

    assert bootsel.select(Counting(files.root), "power")[0] == "a"
    assert ops == []


@_with_files
def test_write_json_is_atomic_under_a_power_cut(files) -> None:  # type: ignore[no-untyped-def]
    files.makedirs("ota")
    files.write_json("ota/x.json", {"n": 1})

    class CutAt(OtaFiles):
        def __init__(self, root: str, at: int) -> None:
            super().__init__(root)
            self.at = at
            self.count = 0

        def _op(self, kind: str, rel: str) -> None:
            self.count += 1
            if self.count > self.at:
                raise PowerCut()

        def _write(self, f, rel, data) -> None:  # type: ignore[no-untyped-def]
            if self.count + 1 > self.at:
                f.write(data[: len(data) // 2])  # torn: half landed
            super()._write(f, rel, data)

    done = []
    for at in range(6):  # write_json is 4 ops: open tmp, write, sync, rename
        files.write_json("ota/x.json", {"n": 1})
        try:
            CutAt(files.root, at).write_json("ota/x.json", {"n": 2, "pad": "y" * 40})
            done.append(True)
        except PowerCut:
            done.append(False)
        assert files.read_json("ota/x.json")["n"] == (2 if done[-1] else 1)
    assert done == [False, False, False, False, True, True]


@_with_files
def test_file_layer_basics(files) -> None:  # type: ignore[no-untyped-def]
    assert files.read_json("nope.json") is None and files.size("nope") is None
    files.makedirs("ota/a/device/core")
    handle = files.open_append("ota/a/device/core/x.py")
    handle.write(b"abc")
    handle.sync()
    handle.close()
    assert files.size("ota/a/device/core/x.py") == 3 and files.listdir("ota/a") == ["device"]
    f = files.open_read("ota/a/device/core/x.py")
    f.seek(1)
    assert f.read() == b"bc"
    f.close()
    files.remove("ota/a/device/core/missing")
    files.rename("ota/a/device/core/x.py", "ota/a/y.py")
    assert files.listdir("ota/a") == ["device", "y.py"]
    files.rmtree("ota")
    files.rmtree("ota")
    assert files.listdir("") == [] and files.listdir("ota") == []
