"""The clip ring (device/core/clipring.py): a byte budget, oldest evicted first, never the newest."""

from device.core.clipring import CLIP_OVERHEAD, ClipRing
from tests.pure._check import raises


def test_oldest_clips_are_evicted_to_make_room():
    ring = ClipRing(3 * (100 + CLIP_OVERHEAD))
    for clip_id in (1, 2, 3):
        assert ring.add(clip_id, b"x" * 100, {}) == []
    assert ring.add(4, b"y" * 100, {}) == [1]
    assert ring.ids() == [2, 3, 4]
    assert ring.add(5, b"z" * 250, {}) == [2, 3]
    assert ring.ids() == [4, 5] and ring.used_bytes <= ring.budget_bytes
    assert ring.evicted == 3


def test_the_newest_clip_is_always_kept():
    ring = ClipRing(1000)
    ring.add(1, b"a" * 10, {})
    assert ring.add(2, b"b" * (1000 - CLIP_OVERHEAD), {}) == [1]
    assert ring.ids() == [2] and ring.newest().clip_id == 2  # type: ignore[union-attr]


def test_a_clip_bigger_than_the_budget_is_refused():
    ring = ClipRing(500)
    ring.add(1, b"a" * 100, {})
    raises(ValueError, ring.add, 2, b"b" * 500, {})
    assert ring.ids() == [1] and ring.refused == 1
    assert not ring.fits(500) and ring.fits(500 - CLIP_OVERHEAD)


def test_ids_must_increase_and_lookups():
    ring = ClipRing(1000)
    ring.add(3, b"c", {"k": 1})
    raises(ValueError, ring.add, 3, b"d", {})
    ring.add(7, b"e", {})
    assert ring.get(3).meta == {"k": 1}  # type: ignore[union-attr]
    assert ring.get(4) is None
    assert ring.next_after(0).clip_id == 3  # type: ignore[union-attr]
    assert ring.next_after(3).clip_id == 7  # type: ignore[union-attr]
    assert ring.next_after(7) is None


def test_make_room_evicts_ahead_of_a_clip_kept_elsewhere():
    ring = ClipRing(3 * (100 + CLIP_OVERHEAD))
    for clip_id in (1, 2, 3):
        ring.add(clip_id, None, {}, 100)  # booked only: the bytes live in files
    assert ring.get(1).data is None and ring.used_bytes == 3 * (100 + CLIP_OVERHEAD)  # type: ignore[union-attr]
    assert ring.make_room(150 + CLIP_OVERHEAD) == [1, 2]  # before the new clip is written
    assert ring.used_bytes + 150 + CLIP_OVERHEAD <= ring.budget_bytes and ring.evicted == 2
    assert ring.add(4, None, {}, 150) == [] and ring.ids() == [3, 4]
