"""``LaneReader.peek``: the drain's no-await way to the next record, and when it must not answer."""

from device.link.lanes import LaneReader
from device.store.memory import MemoryStore


async def _store(budget):  # type: ignore[no-untyped-def]
    store = MemoryStore(budget_bytes=budget)
    await store.open()
    return store


async def test_peek_answers_from_the_page_and_only_from_it():
    store = await _store(1 << 16)
    for i in range(5):
        await store.append("telemetry", {"i": i})
    await store.append("event", {"e": 1})
    reader = LaneReader(store, "telemetry", 3)
    assert reader.peek() is None  # no page yet: that is not "the lane is empty"
    first = await reader.next()
    assert reader.peek() is first and first.payload == {"i": 0}
    seen = []
    for _ in range(10):
        record = reader.peek()
        if record is None:
            record = await reader.next()
            if record is None:
                break
        seen.append(record.payload["i"])
        reader.take()
    assert seen == [0, 1, 2, 3, 4]  # pages of 3, no event among them
    await store.close()


async def test_peek_refuses_a_page_read_before_a_fold():
    store = await _store(1000)
    for i in range(6):
        await store.append("telemetry", {"temp_c": 20 + i, "pad": "x" * 40})
    reader = LaneReader(store, "telemetry", 8)
    before = await reader.next()
    assert reader.peek() is before
    for i in range(12):  # past the high-water mark: the oldest telemetry folds into an aggregate
        await store.append("telemetry", {"temp_c": 30 + i, "pad": "x" * 40})
    assert store.counters["compacted"] > 0
    assert reader.peek() is None  # the page may hold records that are gone: next() reads again
    again = await reader.next()
    assert again is not None and again.seq == before.seq and "agg" in again.payload
    await store.close()
