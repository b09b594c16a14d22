"""The simulated medium itself: torn writes, what a crash keeps, atomic replace, a full disk.

The power-cut and ENOSPC tests are only as good as ``CutFiles``: these pin
down its model (``tests/store/cutfiles.py``) against plain ``Files``.
"""

import random

import pytest

from device.store.fileio import Files
from tests.store.cutfiles import ENOSPC, CutFiles, PowerCut


def test_same_answers_as_plain_files(tmp_path):  # type: ignore[no-untyped-def]
    for files in (CutFiles(), Files(str(tmp_path / "d"))):
        files.make_root()
        h = files.open_append("a")
        h.write(b"hello ")
        h.write(b"world")
        h.sync()
        h.close()
        files.replace("b", b"snapshot")
        h = files.create("a2")
        h.write(b"x")
        h.close()
        files.remove("a2")
        files.remove("missing")  # absent: no error
        assert files.listdir() == ["a", "b"]
        assert files.read("a") == b"hello world"
        assert files.read_at("a", 6, 3) == b"wor"
        assert files.size("b") == 8
        assert files.exists("b")
        assert not files.exists("a2")
        with pytest.raises(OSError):
            files.read("a2")


def test_a_cut_tears_the_write_in_progress_and_kills_the_medium():
    files = CutFiles(cut_at=7)
    h = files.open_append("seg")  # 1 tick: the new file
    h.write(b"abc")  # ticks 2..4
    with pytest.raises(PowerCut):
        h.write(b"defgh")  # only "def" reaches the medium
    assert files.ticks == 7
    assert files.bytes_written == 6
    for op, args in ((h.sync, ()), (files.listdir, ()), (files.read, ("seg",)), (files.remove, ("seg",))):
        with pytest.raises(PowerCut):
            op(*args)
    image = files.crash(random.Random(1)).image()
    assert image.get("seg", b"") in (b"", b"a", b"ab", b"abc", b"abcd", b"abcde", b"abcdef")


def test_power_cut_is_not_an_exception_a_backend_could_swallow():
    assert not issubclass(PowerCut, Exception)


def test_crash_keeps_synced_bytes_and_a_prefix_of_the_rest():
    seen = set()
    for seed in range(200):
        files = CutFiles()
        h = files.open_append("seg")
        h.write(b"durable.")
        h.sync()
        h.write(b"maybe")
        image = files.crash(random.Random(seed)).image()
        assert image["seg"].startswith(b"durable.")
        assert b"durable.maybe".startswith(image["seg"])
        seen.add(image["seg"])
    assert b"durable." in seen and b"durable.maybe" in seen and len(seen) > 3


def test_a_never_synced_file_may_vanish_or_come_back_short():
    outcomes = set()
    for seed in range(200):
        files = CutFiles()
        h = files.create("new")
        h.write(b"data")
        outcomes.add(files.crash(random.Random(seed)).image().get("new"))
    assert None in outcomes and b"" in outcomes and b"data" in outcomes


def test_replace_is_old_or_new_at_every_cut():
    total = None
    for cut in range(40):
        for seed in range(20):
            files = CutFiles.from_image({"state": b"old-content"}, cut_at=cut)
            try:
                files.replace("state", b"new-content!")
            except PowerCut:
                pass
            else:
                total = files.ticks
            image = files.crash(random.Random(seed)).image()
            assert image["state"] in (b"old-content", b"new-content!")
            if cut >= (total or 10**9):
                assert image["state"] == b"new-content!"
    assert total == 1 + 12 + 1 + 1 + 1  # create, bytes, sync, rename, dir sync


def test_removes_and_renames_come_back_in_order_or_not_at_all():
    for seed in range(100):
        files = CutFiles.from_image({"seg1": b"1", "seg2": b"2"})
        files.remove("seg1")
        files.remove("seg2")
        names = sorted(files.crash(random.Random(seed)).image())
        assert names in (["seg1", "seg2"], ["seg2"], [])


def test_a_file_sync_commits_the_directory_ops_before_it():
    files = CutFiles.from_image({"old": b"x"})
    files.remove("old")
    h = files.create("new")
    h.write(b"y")
    h.sync()
    for seed in range(20):
        assert files.crash(random.Random(seed)).image() == {"new": b"y"}


def test_enospc_writes_what_fits_then_refuses_until_space_is_freed():
    files = CutFiles(capacity=10)
    h = files.open_append("seg")
    h.write(b"123456")
    with pytest.raises(OSError) as err:
        h.write(b"7890ab")
    assert err.value.args[0] == ENOSPC
    assert files.read("seg") == b"1234567890"
    with pytest.raises(OSError):
        h.write(b"c")
    files.capacity = None
    h.write(b"c")
    assert files.read("seg") == b"1234567890c"
    assert files.enospc_errors == 2

    strict = CutFiles(capacity=4, partial_enospc=False)
    h = strict.open_append("seg")
    with pytest.raises(OSError):
        h.write(b"12345")
    assert strict.read("seg") == b""


def test_materialize_writes_a_directory_plain_files_can_read(tmp_path):  # type: ignore[no-untyped-def]
    files = CutFiles()
    files.replace("state", b"{}")
    h = files.open_append("seg")
    h.write(b"rec")
    files.crash(random.Random(3))
    plain = files.materialize(str(tmp_path / "m"))
    assert plain.listdir() == ["seg", "state"]
    assert plain.read("seg") == b"rec"


def test_a_junk_crash_may_add_zeros_or_noise_after_the_kept_prefix():
    tails = set()
    for seed in range(100):
        files = CutFiles()
        h = files.open_append("seg")
        h.write(b"synced")
        h.sync()
        h.write(b"+tail")
        data = files.crash(random.Random(seed), junk=True).image()["seg"]
        assert data.startswith(b"synced")
        tails.add(data[6:])
    assert any(len(t) > 5 for t in tails), "never any junk"
    assert any(b"+tail".startswith(t) for t in tails)
