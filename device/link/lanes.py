"""One outbox lane as the sync engine reads it: a cursor and a read-ahead page.

``LaneReader.next()`` gives the lane's next record not yet taken (oldest
first), ``take()`` moves past it once it is published (or skipped), and
``rewind(seq)`` makes the lane give ``seq`` and what follows again (a
publish the broker lost, a record folded while in flight).

Two things keep a long backlog cheap to read:

* **Read-ahead.** Records come from the store a page at a time (one thread
  hop for sqlite, one index walk for the log), not once per publish.
* **Scanned-to mark.** A page that comes back short proves the lane holds
  nothing more up to the last committed seq seen before the read, so the
  mark jumps there: a lane with nothing in it is not scanned again past the
  other lanes' 50,000 records. Until the store's ``appended`` counter moves
  (it counts records once they are readable) it is not even asked.

Telemetry may be folded by retention under the reader's feet (the aggregate
takes the run's first seq): when the store's ``compacted`` counter moves, the
page read before is dropped and read again from the cursor.

``TokenBucket`` paces the drain after a long outage (``rate_limited``).
"""


class LaneReader:
    def __init__(self, store, lane: str, page: int) -> None:  # type: ignore[no-untyped-def]
        self.store = store
        self.lane = lane
        self._lanes = (lane,)
        self.page = page
        self.folds = lane == "telemetry"  # only telemetry is ever folded
        self.reset(0)

    def reset(self, to: int) -> None:
        """Forget the page: the next record read is the first after ``to``."""
        self.cursor = to  # the last seq taken
        self.scanned = to  # every record of the lane up to here is taken or in the page
        self.ahead: list = []
        self.i = 0
        self.compacted = -1  # the store's "compacted" counter when the page was read
        self.quiet = -1  # the store's "appended" counter when the lane was last found to hold nothing more

    def rewind(self, seq: int) -> None:
        """Give ``seq`` (and every later record not in flight) again."""
        self.reset(min(self.cursor, seq - 1))

    def peek(self):  # type: ignore[no-untyped-def]
        """The next record when the page in hand still holds it (nothing folded since), else None.

        No await: the drain's hot loop takes records this way and calls ``next()`` only
        when the page runs out (None here does not mean the lane is empty).
        """
        if self.i < len(self.ahead) and (not self.folds or self.store.counters["compacted"] == self.compacted):
            return self.ahead[self.i]
        return None

    async def next(self):  # type: ignore[no-untyped-def]
        """The lane's next record not taken yet, or None when there is none now."""
        store = self.store
        while True:
            if self.i < len(self.ahead):
                if self.folds and store.counters["compacted"] != self.compacted:
                    self.reset(self.cursor)  # folded since the page was read: read it again
                    continue
                return self.ahead[self.i]
            self.ahead = []
            self.i = 0
            # Nothing appended (committed, on sqlite) since the lane ran dry: still dry.
            # (A counter read; seq_range is not O(1) on the log backend.)
            mark = store.counters["appended"]
            if mark == self.quiet:
                return None
            last = store.seq_range()[1]
            if last is None or self.scanned >= last:
                self.quiet = mark
                return None
            compacted = store.counters["compacted"]
            page = await store.read_outbox(self.page, self.scanned, self._lanes)
            self.ahead = page
            self.compacted = compacted
            if len(page) >= self.page:
                self.scanned = page[-1].seq
            else:
                # Short: nothing else of this lane up to `last` (later commits may be in the page too).
                self.scanned = last if not page or page[-1].seq < last else page[-1].seq
                self.quiet = mark

    def take(self) -> None:
        """The record ``next()`` gave is handled: move past it."""
        self.cursor = self.ahead[self.i].seq
        self.i += 1
        if self.i >= len(self.ahead):
            self.ahead = []  # let the page go
            self.i = 0


class TokenBucket:
    """``rate_per_s`` tokens a second, at most ``size`` saved up; on real time (monotonic ms).

    Kept in thousandths of a token so that integer arithmetic does not lose the fractions.
    """

    def __init__(self, size: int, rate_per_s: int) -> None:
        self.size = size
        self.rate_per_s = rate_per_s
        self._milli = 0
        self._at = 0

    def fill(self, now_ms: int) -> None:
        """Start full (a burst of ``size``), as of ``now_ms``."""
        self._milli = self.size * 1000
        self._at = now_ms

    def take(self, now_ms: int) -> int:
        """Take a token: 0 if there was one, else the ms until there is (nothing is taken)."""
        milli = self._milli + (now_ms - self._at) * self.rate_per_s
        self._at = now_ms
        if milli > self.size * 1000:
            milli = self.size * 1000
        if milli >= 1000:
            self._milli = milli - 1000
            return 0
        self._milli = milli
        if self.rate_per_s <= 0:
            return 1000  # no rate: nothing ever goes (the engine does not use a bucket then)
        return (1000 - milli) // self.rate_per_s + 1
