"""Power cuts at every byte while clips are written: a torn clip is never offered, the budget always holds.

``tests.store.cutfiles.CutFiles`` cuts the power at tick ``k`` (a byte
written or a file operation) of a scripted run of ``FileClips``: clips of
several sizes recorded frame by frame, evicting older ones under a small
budget. The medium is then crashed (synced bytes kept, a random prefix of
the rest, pending directory changes applied up to a random point), and a new
``FileClips`` opens what is left. For every ``k``:

* every clip it offers is whole: exactly the bytes recorded under that id;
* each clip whose ``finish`` returned before the cut and that the run had
  not evicted is still there (finish syncs the file and the directory);
* no temp file is left, and the files never hold more than the budget;
* recording goes on: a new clip is kept and survives a clean reopen.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from device.core.clipring import CLIP_OVERHEAD
from device.store.clipfiles import FOOTER_BYTES, META_MAX, FileClips
from tests.store.cutfiles import CutFiles, PowerCut

FRAME = 64
BUDGET = 3 * (4 * FRAME + META_MAX + FOOTER_BYTES + CLIP_OVERHEAD)
SCRIPT = [(1, 4), (2, 2), (3, 4), (4, 1), (5, 4), (6, 3)]  # (clip id, frames)


class RenamingCutFiles(CutFiles):
    """``CutFiles`` with the ``rename`` the clip files use (a directory operation, one tick)."""

    def rename(self, src: str, dst: str) -> None:
        self._alive()
        self._inode(src)
        self._dir_op(("rename", src, dst))


def _frame(clip_id: int, i: int) -> bytes:
    return bytes([(clip_id * 31 + i * 7 + j) % 256 for j in range(FRAME)])


def _clip_bytes(clip_id: int, frames: int) -> bytes:
    return b"".join(_frame(clip_id, i) for i in range(frames))


def _run_script(files: CutFiles, promised: dict, kept_by_begin: list) -> None:
    """Record SCRIPT. ``promised["live"]``: the finished clips the run has not (started to) evict.

    ``kept_by_begin[k]``: the clips left once the k-th begin evicted (from an uncut run: the
    run is deterministic); filled in when empty.
    """
    clips = FileClips(files, BUDGET)
    clips.open()
    for k in range(len(SCRIPT)):
        clip_id, frames = SCRIPT[k]
        if len(kept_by_begin) > k:
            promised["live"] = kept_by_begin[k]  # this begin may be cut mid-eviction
        assert clips.begin(clip_id, frames * FRAME)
        if len(kept_by_begin) == k:
            kept_by_begin.append(clips.ring.ids())
        for i in range(frames):
            clips.write(_frame(clip_id, i))
        assert clips.finish({"clip": clip_id})
        promised["live"] = clips.ring.ids()


def _with_rename(medium: CutFiles) -> RenamingCutFiles:
    out = RenamingCutFiles()
    for name, data in medium.image().items():
        out.poke(name, data)
    return out


KEPT_BY_BEGIN: list = []


def _total_ticks() -> int:
    files = RenamingCutFiles()
    _run_script(files, {}, KEPT_BY_BEGIN)
    return files.ticks


def _check_after_cut(cut_at: int, rng: random.Random, junk: bool) -> None:
    files = RenamingCutFiles(cut_at=cut_at)
    promised: dict = {"live": []}
    try:
        _run_script(files, promised, KEPT_BY_BEGIN)
    except PowerCut:
        pass
    medium = _with_rename(files.crash(rng, junk=junk))
    clips = FileClips(medium, BUDGET)
    clips.open()
    frames_of = dict(SCRIPT)
    for clip_id in clips.ring.ids():
        assert clips.data(clip_id) == _clip_bytes(clip_id, frames_of[clip_id]), (cut_at, clip_id)
    for clip_id in promised["live"]:
        assert clips.get(clip_id) is not None, (cut_at, clip_id, clips.ring.ids())
    names = medium.listdir()
    assert not [n for n in names if n.endswith(".tmp")], names
    assert medium.used_bytes() <= BUDGET
    # Life goes on: a new clip is kept and found again after a clean reopen.
    assert clips.begin(100, 2 * FRAME)
    clips.write(_frame(100, 0))
    clips.write(_frame(100, 1))
    assert clips.finish({"clip": 100})
    assert medium.used_bytes() <= BUDGET
    again = FileClips(medium, BUDGET)
    again.open()
    assert again.ring.ids()[-1] == 100 and again.data(100) == _clip_bytes(100, 2)


def test_a_cut_at_every_tick_never_offers_a_torn_clip() -> None:
    total = _total_ticks()
    assert total > 6 * 4 * FRAME  # every byte of every frame is a tick
    rng = random.Random(6)
    for cut_at in range(total + 1):
        _check_after_cut(cut_at, rng, junk=cut_at % 3 == 0)


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(min_value=0, max_value=10**6), seed=st.integers(min_value=0, max_value=10**6))
def test_random_cuts_and_crash_outcomes(cut: int, seed: int) -> None:
    total = _total_ticks()
    _check_after_cut(cut % (total + 1), random.Random(seed), junk=seed % 2 == 0)


@settings(max_examples=80, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=5 * FRAME), min_size=1, max_size=25),
    capacity=st.one_of(st.none(), st.integers(min_value=0, max_value=2 * BUDGET)),
)
def test_budget_on_disk_never_exceeded_and_full_flash_only_drops(sizes: list[int], capacity: int | None) -> None:
    files = RenamingCutFiles(capacity=capacity)
    clips = FileClips(files, BUDGET)
    clips.open()
    kept = 0
    for clip_id, size in enumerate(sizes, start=1):
        before = clips.ring.ids()
        if not clips.begin(clip_id, size):
            assert clips.dropped or clips.ring.refused
            continue
        assert files.used_bytes() <= BUDGET
        clips.write(b"q" * (size // 2))
        clips.write(b"r" * (size - size // 2))
        assert files.used_bytes() <= BUDGET
        if clips.finish({"clip": clip_id}):
            kept += 1
            assert clips.ring.ids()[-1] == clip_id  # never the newest
            assert clips.ring.ids()[:-1] == before[len(before) - len(clips.ring.ids()) + 1 :]  # oldest went first
            assert clips.data(clip_id) == b"q" * (size // 2) + b"r" * (size - size // 2)
        assert files.used_bytes() <= BUDGET
        assert not [n for n in files.listdir() if n.endswith(".tmp")]  # a dropped clip leaves nothing
        assert sorted(files.listdir()) == sorted(f"{i}.clip" for i in clips.ring.ids())
    if capacity is None:
        assert kept == len(sizes) and clips.dropped == 0
    else:
        assert kept + clips.dropped == len(sizes)
