"""Clips on flash (device/store/clipfiles.py): reboot, byte budget on disk, torn files, full flash.

Real files under a fresh ``/tmp`` directory per test (removed afterwards), so
this runs under MicroPython too; a full flash is a ``Files`` whose writes
fail with ENOSPC past a byte capacity.
"""

from device.core.clipring import CLIP_OVERHEAD
from device.store.clipfiles import FOOTER_BYTES, META_MAX, FileClips
from device.store.fileio import FileHandle, Files
from tests.pure._check import raises
from tests.pure._tmpdirs import remove_tree, unique_dir

_made = []


def _fresh_dir() -> str:
    name = unique_dir("clips")
    _made.append(name)
    return name


def _cleanup() -> None:
    while _made:
        remove_tree(_made.pop())


def _frames(clip_id, n, size):  # type: ignore[no-untyped-def]
    return [bytes([(clip_id * 7 + i) % 256]) * size for i in range(n)]


def _record(clips, clip_id, frames):  # type: ignore[no-untyped-def]
    assert clips.begin(clip_id, sum(len(f) for f in frames))
    for frame in frames:
        clips.write(frame)
    return clips.finish({"clip": clip_id, "frames": len(frames)})


def _disk_bytes(files) -> int:  # type: ignore[no-untyped-def]
    return sum(files.size(name) for name in files.listdir())


def _with_dir(test):  # type: ignore[no-untyped-def]
    try:
        test(Files(_fresh_dir()))
    finally:
        _cleanup()


def test_clips_survive_a_reopen_whole_and_in_order():
    def body(files):  # type: ignore[no-untyped-def]
        clips = FileClips(files, 20000)
        assert clips.open() == 0
        for clip_id in (1, 2, 3):
            assert _record(clips, clip_id, _frames(clip_id, 4, 300))
        assert sorted(files.listdir()) == ["1.clip", "2.clip", "3.clip"]
        again = FileClips(files, 20000)  # a reboot
        assert again.open() == 3
        assert again.ring.ids() == [1, 2, 3] and again.torn == 0 and again.loaded == 3 and again.ring.added == 0
        for clip_id in (1, 2, 3):
            assert again.data(clip_id) == b"".join(_frames(clip_id, 4, 300))
            item = again.get(clip_id)
            assert item[1] == 1200 and item[3]["frames"] == 4 and len(item[2]) == 64
        assert again.read(2, 1100, 500) == _frames(2, 4, 300)[3][200:]  # clipped at the end
        assert again.next_after(1)[0] == 2 and again.next_after(3) is None

    _with_dir(body)


def test_the_budget_holds_on_disk_even_mid_write_and_the_newest_stays():
    def body(files):  # type: ignore[no-untyped-def]
        budget = 3 * (1000 + META_MAX + FOOTER_BYTES + CLIP_OVERHEAD)
        clips = FileClips(files, budget)
        clips.open()
        sizes = [1000, 200, 700, 1000, 50, 999, 1000, 1000, 10, 600]
        for clip_id in range(1, len(sizes) + 1):
            n = sizes[clip_id - 1]
            assert clips.begin(clip_id, n)
            clips.write(b"a" * (n // 2))
            assert _disk_bytes(files) <= budget  # the temp file counts too
            clips.write(b"b" * (n - n // 2))
            assert clips.finish({"clip": clip_id})
            assert _disk_bytes(files) <= budget
            assert clips.ring.ids()[-1] == clip_id
            assert sorted(files.listdir()) == sorted([str(i) + ".clip" for i in clips.ring.ids()])
        assert clips.ring.evicted > 0
        assert not clips.begin(99, budget)  # bigger than the whole budget: refused up front
        assert clips.ring.refused == 1 and not clips.recording()

    _with_dir(body)


def test_a_clip_cut_by_a_power_loss_is_dropped_not_offered():
    def body(files):  # type: ignore[no-untyped-def]
        clips = FileClips(files, 50000)
        clips.open()
        for clip_id in (1, 2, 3, 4, 5):
            assert _record(clips, clip_id, _frames(clip_id, 3, 500))
        # Clip 6 was being recorded when the power went: only its temp file is there.
        assert clips.begin(6, 1500)
        clips.write(b"x" * 500)
        clips._handle.close()  # the power went: nothing more reaches this file  # type: ignore[union-attr]
        # Damage the finished ones the ways a cut or a bad flash page would.
        whole = files.read("2.clip")
        with open(files.path("2.clip"), "wb") as f:
            f.write(whole[: len(whole) - 5])  # truncated footer
        with open(files.path("3.clip"), "wb") as f:
            f.write(whole[:700])  # truncated frames
        data = bytearray(files.read("4.clip"))
        data[10] ^= 0xFF  # a flipped bit in the frames: the sha256 catches it
        with open(files.path("4.clip"), "wb") as f:
            f.write(data)
        with open(files.path("5.clip"), "ab") as f:
            f.write(bytes(40))  # zeros after the footer (size committed before the data)
        again = FileClips(files, 50000)
        assert again.open() == 6
        assert again.ring.ids() == [1] and again.torn == 5
        assert again.get(2) is None and again.get(6) is None and again.next_after(1) is None
        assert files.listdir() == ["1.clip"]

    _with_dir(body)


class _FullHandle(FileHandle):
    def __init__(self, files, f):  # type: ignore[no-untyped-def]
        super().__init__(f)
        self._files = files

    def write(self, data) -> None:  # type: ignore[no-untyped-def]
        if self._files.capacity is not None and _disk_bytes(self._files) + len(data) > self._files.capacity:
            raise OSError(28, "No space left on device")
        super().write(data)
        self._f.flush()  # so that the sizes on disk count it


class FullFiles(Files):
    """Real files with a byte capacity: writes past it fail with ENOSPC."""

    capacity = None

    def _open(self, name, mode):  # type: ignore[no-untyped-def]
        return _FullHandle(self, open(self.path(name), mode))


def test_a_full_flash_drops_the_clip_counts_it_and_recording_goes_on():
    try:
        files = FullFiles(_fresh_dir())
        clips = FileClips(files, 50000)
        clips.open()
        assert _record(clips, 1, _frames(1, 3, 400))
        files.capacity = _disk_bytes(files) + 700  # room for less than one more clip
        assert clips.begin(2, 1200)
        for frame in _frames(2, 3, 400):
            clips.write(frame)  # the second write fails: the clip is dropped there
        assert not clips.recording() and not clips.finish({"clip": 2})
        assert clips.dropped == 1 and clips.last_errno == 28
        assert files.listdir() == ["1.clip"] and clips.ring.ids() == [1]
        # The footer does not fit either: dropped at finish, nothing left behind.
        files.capacity = _disk_bytes(files) + 1250
        assert clips.begin(3, 1200)
        for frame in _frames(3, 3, 400):
            clips.write(frame)
        assert not clips.finish({"clip": 3}) and clips.dropped == 2
        assert files.listdir() == ["1.clip"]
        files.capacity = None  # space freed: the next clip is kept
        assert _record(clips, 4, _frames(4, 3, 400))
        assert clips.ring.ids() == [1, 4]
        assert clips.stats()["dropped"] == 2 and clips.stats()["store"] == "files"
    finally:
        _cleanup()


def test_reading_an_evicted_clip_fails_cleanly():
    def body(files):  # type: ignore[no-untyped-def]
        clips = FileClips(files, 2 * (400 + META_MAX + FOOTER_BYTES + CLIP_OVERHEAD))
        clips.open()
        for clip_id in (1, 2, 3):
            assert _record(clips, clip_id, [b"z" * 400])
        assert clips.ring.ids() == [2, 3]
        raises(OSError, clips.read, 1, 0, 10)
        assert clips.get(1) is None

    _with_dir(body)
