"""Outbox retention: fold old telemetry into aggregates when the byte budget runs low.

Pure functions, shared by every backend. A backend calls ``over_high_water``
before an append; when it says so, it folds runs of consecutive telemetry
records, oldest first, until its bytes are down to ``low_water``:

    run = find_run(lanes, start)      # indexes of the oldest foldable run
    payload = fold(records_of_run)    # one aggregate payload for the run
    keep it only if it is smaller than the run (``worth_folding``)

The aggregate takes the run's first seq, boot and created_ms, so the outbox
stays in seq order and the cloud, which dedupes on seq, sees one record
standing for the whole range. Its payload says what it covers::

    {"agg": {"first": 10, "last": 25, "n": 16, "from_ms": 600000, "to_ms": 1500000},
     "stats": {"temp_c": [16, 19.8, 21.2, 20.4521], "heat": [16, 0, 1, 0.375]},
     "last": {"mode": "heat"}}

``first``/``last`` is the seq range folded (seqs in it the cloud already
received were acked earlier and are not in the aggregate); ``n`` the number
of samples; ``stats`` per numeric field ``[count, min, max, mean]`` (booleans
count as 0/1, so a relay's mean is its duty cycle; None is skipped); ``last``
the latest value of every other field. Folding aggregates again merges them
exactly (counts add, means weigh by count), so old data gets coarser, never
wrong. Events and results are never folded.
"""

from device.compat import const

# The water marks are retention's, but every append checks them: they live in
# base, loaded on every board, so that this module is imported only for a fold.
from device.store.base import HIGH_WATER_PCT, LOW_WATER_PCT, high_water, low_water, over_high_water

__all__ = [  # the water marks are re-exported
    "FOLD_GROUP",
    "HIGH_WATER_PCT",
    "LOW_WATER_PCT",
    "MEAN_DIGITS",
    "TELEMETRY",
    "find_run",
    "fold",
    "high_water",
    "is_aggregate",
    "low_water",
    "over_high_water",
    "samples_in",
    "worth_folding",
]

FOLD_GROUP = const(16)  # at most this many records become one aggregate
MEAN_DIGITS = const(4)
TELEMETRY = const(0)  # index of "telemetry" in base.LANES


def is_aggregate(payload: dict) -> bool:
    return isinstance(payload.get("agg"), dict)


def samples_in(payload: dict) -> int:
    """How many telemetry samples a payload stands for (1 for a plain sample)."""
    agg = payload.get("agg")
    if isinstance(agg, dict):
        n = agg.get("n")
        if isinstance(n, int) and n > 0:
            return n
    return 1


def find_run(lanes, start: int = 0, group: int = FOLD_GROUP) -> tuple:  # type: ignore[no-untyped-def]
    """The first run of 2..``group`` consecutive telemetry entries at or after ``start``.

    ``lanes``, any sequence of ints (a list, a bytearray), holds the lane index
    of each outbox record in seq order. Returns
    ``(i, j)`` with records ``i .. j-1`` forming the run, or ``(-1, -1)``.
    """
    n = len(lanes)
    i = start
    while i < n:
        if lanes[i] != TELEMETRY:
            i += 1
            continue
        j = i + 1
        while j < n and j - i < group and lanes[j] == TELEMETRY:
            j += 1
        if j - i >= 2:
            return i, j
        i = j
    return -1, -1


def _number(value) -> float | None:  # type: ignore[no-untyped-def]
    if value is True:
        return 1
    if value is False:
        return 0
    if isinstance(value, (int, float)):
        return value
    return None


class _Folder:
    def __init__(self) -> None:
        self.first = -1
        self.last = -1
        self.n = 0
        self.from_ms = 0
        self.to_ms = 0
        self.stats: dict = {}  # field -> [count, min, max, sum]
        self.latest: dict = {}

    def add_stat(self, field: str, count: int, low, high, mean) -> None:  # type: ignore[no-untyped-def]
        stat = self.stats.get(field)
        if stat is None:
            self.stats[field] = [count, low, high, mean * count]
            return
        stat[0] += count
        if low < stat[1]:
            stat[1] = low
        if high > stat[2]:
            stat[2] = high
        stat[3] += mean * count

    def add(self, seq: int, created_ms: int, payload: dict) -> None:
        agg = payload.get("agg")
        if isinstance(agg, dict):
            first = agg.get("first", seq)
            last = agg.get("last", seq)
            n = samples_in(payload)
            from_ms = agg.get("from_ms", created_ms)
            to_ms = agg.get("to_ms", created_ms)
            stats = payload.get("stats")
            if isinstance(stats, dict):
                for field in stats:
                    item = stats[field]
                    if isinstance(item, list) and len(item) == 4:
                        self.add_stat(field, item[0], item[1], item[2], item[3])
            latest = payload.get("last")
            if isinstance(latest, dict):
                for field in latest:
                    self.latest[field] = latest[field]
        else:
            first = last = seq
            n = 1
            from_ms = to_ms = created_ms
            for field, value in payload.items():
                number = _number(value)
                if number is not None:
                    self.add_stat(field, 1, number, number, number)
                elif value is not None:
                    self.latest[field] = value
        if self.n == 0:
            self.first = first
            self.from_ms = from_ms
        self.last = last
        self.to_ms = to_ms
        self.n += n

    def payload(self) -> dict:
        """The aggregate; call once: the sums become means in place (no second copy on a small heap)."""
        stats = self.stats
        for field in stats:
            stat = stats[field]
            stat[3] = round(stat[3] / stat[0], MEAN_DIGITS)
        out = {
            "agg": {"first": self.first, "last": self.last, "n": self.n, "from_ms": self.from_ms, "to_ms": self.to_ms},
            "stats": stats,
        }
        if self.latest:
            out["last"] = self.latest
        return out


def fold(records) -> dict:  # type: ignore[no-untyped-def]
    """One aggregate payload for telemetry ``records``: ``Record`` objects in seq order.

    Any iterable: a backend may decode them one at a time as they are taken.
    """
    folder = _Folder()
    for record in records:
        folder.add(record.seq, record.created_ms, record.payload)
    return folder.payload()


def worth_folding(run_bytes: int, aggregate_bytes: int) -> bool:
    """Fold only when the aggregate is smaller than what it replaces."""
    return aggregate_bytes < run_bytes
