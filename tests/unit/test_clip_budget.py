"""Hypothesis: whatever clips arrive, the ring never holds more than its budget and always keeps the newest."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from device.core.clipring import CLIP_OVERHEAD, ClipRing


@given(
    budget=st.integers(min_value=CLIP_OVERHEAD + 1, max_value=20_000),
    sizes=st.lists(st.integers(min_value=0, max_value=25_000), max_size=60),
)
def test_budget_never_exceeded_and_newest_kept(budget: int, sizes: list[int]) -> None:
    ring = ClipRing(budget)
    kept_total = 0
    for clip_id, size in enumerate(sizes, start=1):
        before = ring.ids()
        if not ring.fits(size):
            try:
                ring.add(clip_id, b"x" * size, {})
            except ValueError:
                assert ring.ids() == before  # refused whole, nothing evicted
                continue
            raise AssertionError("a clip over the budget was accepted")
        evicted = ring.add(clip_id, b"x" * size, {})
        kept_total += 1
        assert ring.ids()[-1] == clip_id  # never the newest
        assert evicted == before[: len(evicted)]  # oldest first
        assert ring.ids() == [*before[len(evicted) :], clip_id]
        assert ring.used_bytes <= budget
        assert ring.used_bytes == sum(len(ring.get(i).data) + CLIP_OVERHEAD for i in ring.ids())  # type: ignore[union-attr]
    assert ring.added == kept_total
