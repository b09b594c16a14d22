"""A seeded store workload that tells a ``Ledger`` everything it does.

``Workload.step(op)`` runs one operation (an append of telemetry, an event or
a result, an ack, a state put, an inbox change, a compaction, a clean reopen
or a "soft reboot" that drops the store without closing it) and keeps the
ledger in step: ``begin_*`` before the call, ``end_*`` after it returned.
The same seed gives the same operations and payloads, so a power cut at
tick ``k`` interrupts the same run at a different place for every ``k``.
"""

import random

from device.errors import StoreError, StoreFullError, StoreWriteError
from tests.store.ledger import Ledger, read_all

WALL_BASE_MS = 1760918400000

# Operation mix of the random workload: (name, weight).
MIX = (
    ("telemetry", 34),
    ("event", 12),
    ("result", 4),
    ("ack", 8),
    ("ack_seqs", 4),
    ("put_a", 8),
    ("put_b", 3),
    ("inbox_add", 4),
    ("inbox_expire", 2),
    ("compact", 2),
    ("reopen", 2),
    ("reboot", 1),
)
# Acks rare: the outbox fills, telemetry is folded, the ring copies live records forward, events hit the budget.
MIX_HOARD = tuple((name, 1 if name.startswith("ack") else weight) for name, weight in MIX)


def pick(rng: random.Random, mix: tuple = MIX) -> str:
    total = sum(weight for _, weight in mix)
    r = rng.randrange(total)
    for name, weight in mix:
        if r < weight:
            return name
        r -= weight
    raise AssertionError("unreachable")


class Workload:
    def __init__(self, make_store, ledger: Ledger, rng: random.Random, mix: tuple = MIX) -> None:  # type: ignore[no-untyped-def]
        self.make_store = make_store  # files -> an un-opened store
        self.mix = mix
        self.ledger = ledger
        self.rng = rng
        self.store = None
        self.files = None
        self.now_ms = 0
        self.counter = 0
        self.tokens = 0
        self.problems: list = []
        self.full_rejections = 0
        # With a full medium: a StoreWriteError is an answer, not a failure (counted here).
        self.tolerate_write_errors = False
        self.write_errors = 0
        self.session_errors = 0  # ... since the store was last opened
        self.session_base = 0  # its write_errors counter then

    async def open(self, files) -> None:  # type: ignore[no-untyped-def]
        self.files = files
        store = self.make_store(files)
        before = self.ledger.last_boot
        self.ledger.begin_open()
        await store.open()
        self.ledger.end_open(store.boot_id)
        if store.boot_id != before + 1:
            self.problems.append("open after boot %d gave boot id %d" % (before, store.boot_id))
        if store.next_seq() <= self.ledger.max_seq:
            self.problems.append(
                "reopened with next_seq %d <= seq %d handed out" % (store.next_seq(), self.ledger.max_seq)
            )
        self.store = store
        self.session_base = store.counters["write_errors"]
        self.session_errors = 0

    async def close(self) -> None:
        await self.store.close()  # type: ignore[attr-defined]

    async def run(self, steps: int) -> None:
        for _ in range(steps):
            await self.step(pick(self.rng, self.mix))

    async def step(self, op: str) -> None:
        rng = self.rng
        self.now_ms += rng.randrange(1, 50)
        self.counter += 1
        n = self.counter
        if op == "telemetry":
            await self.append("telemetry", {"v": rng.randrange(1000) / 10, "n": n, "on": n % 3 == 0})
        elif op == "event":
            await self.append("event", {"type": "e", "n": n, "pad": "x" * rng.randrange(60)})
        elif op == "result":
            await self.append("result", {"cmd": "c%d" % n, "ok": rng.random() < 0.5})
        elif op == "ack":
            await self.ack(rng)
        elif op == "ack_seqs":
            await self.ack_seqs(rng)
        elif op == "put_a":
            await self.put("a", n, "local", self._wall())
        elif op == "put_b":
            await self.put("b", {"n": n, "s": "y" * rng.randrange(40)}, "cloud", None)
        elif op == "inbox_add":
            await self.inbox_add("cmd-%d" % n, self.now_ms + rng.randrange(100, 3000))
        elif op == "inbox_expire":
            await self.inbox_expire(self.now_ms)
        elif op == "compact":
            await self._refused(self.store.compact())  # type: ignore[attr-defined]
        elif op == "reopen":
            await self.close()
            await self.open(self.files)
        elif op == "reboot":
            await self.open(self.files)  # the old store is dropped unclosed, its handles leak
        else:
            raise ValueError(op)

    def _wall(self) -> int | None:
        return None if self.counter % 4 == 0 else WALL_BASE_MS + self.now_ms

    async def append(self, lane: str, payload: dict) -> None:
        store = self.store
        self.tokens += 1
        token = self.tokens
        self.ledger.begin_append(token, lane, payload, store.boot_id)  # type: ignore[attr-defined]
        try:
            seq = await store.append(lane, payload, self.now_ms)  # type: ignore[attr-defined]
        except StoreFullError:
            self.ledger.fail_append(token)
            self.full_rejections += 1
            return
        except StoreWriteError:
            if not self.tolerate_write_errors:
                raise
            self.ledger.fail_append(token)
            self.write_errors += 1
            self.session_errors += 1
            return
        problem = self.ledger.end_append(token, seq)
        if problem:
            self.problems.append(problem)

    async def ack(self, rng: random.Random) -> None:
        read = await read_all(self.store)
        if not read:
            return
        upto = read[rng.randrange(len(read))].seq
        seqs = self.ledger.acked_by(upto, read)
        self.ledger.begin_ack(seqs, upto)
        if await self._refused(self.store.ack(upto)):  # type: ignore[attr-defined]
            return  # left "maybe acked": a failed ack may or may not have reached the medium
        self.ledger.end_ack(seqs, upto)

    async def ack_seqs(self, rng: random.Random) -> None:
        read = await read_all(self.store)
        if not read:
            return
        chosen = [r.seq for r in read if rng.random() < 0.3]
        seqs = self.ledger.acked_by_seqs(chosen, read)
        self.ledger.begin_ack(seqs)
        if await self._refused(self.store.ack_seqs(chosen)):  # type: ignore[attr-defined]
            return
        self.ledger.end_ack(seqs)

    async def put(self, key: str, value, origin: str, wall_ms: int | None) -> None:  # type: ignore[no-untyped-def]
        self.ledger.begin_put(key, value, origin)
        try:
            entry = await self.store.put_state(key, value, origin, wall_ms)  # type: ignore[attr-defined]
        except StoreWriteError:
            if not self.tolerate_write_errors:
                raise
            self.write_errors += 1
            self.session_errors += 1
            return  # left in flight: the entry may or may not have reached the medium
        except StoreError:
            self.ledger.fail_put(key)
            raise
        problem = self.ledger.end_put(entry)
        if problem:
            self.problems.append(problem)

    async def inbox_add(self, command_id: str, expires_ms: int) -> None:
        self.ledger.begin_inbox_add(command_id)
        if await self._refused(self.store.inbox_add(command_id, expires_ms)):  # type: ignore[attr-defined]
            return
        self.ledger.end_inbox_add(command_id, expires_ms)

    async def inbox_expire(self, now_ms: int) -> None:
        self.ledger.begin_expire(now_ms)
        if await self._refused(self.store.inbox_expire(now_ms)):  # type: ignore[attr-defined]
            return
        self.ledger.end_expire(now_ms)

    async def _refused(self, call) -> bool:  # type: ignore[no-untyped-def]
        """Await ``call``; True if the medium refused it and that is tolerated (the op stays in flight)."""
        try:
            await call
        except StoreWriteError:
            if not self.tolerate_write_errors:
                raise
            self.write_errors += 1
            self.session_errors += 1
            return True
        return False
