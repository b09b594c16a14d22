"""Model-based outbox machines for the ``model-based`` harness: append/ack/ack_seqs/compact/put_state
plus crash and reopen, on the memory, log and sqlite backends, against a simple model.

The rules and the model are the store's own state machine (``tests/unit/test_store_machine.py``:
seqs strictly increase and are never reused, every event/result not acked is held unchanged,
telemetry is held or stated correctly by an aggregate, depth and budget agree, state equals
the model); this module adds the **crash**: the store is abandoned without ``close`` and opened
again on what its medium kept, and must then hold exactly what it held before (every
operation that returned was durable).

* ``log``: the flash log store on ``tests.store.cutfiles.CutFiles``, a medium that at a power
  cut keeps synced bytes and a random prefix of each unsynced tail (a real power cut).
* ``sqlite``: a file store whose pending commit task is cancelled and connection dropped
  unclosed (a killed process).
* ``memory``: nothing survives a crash by design, so it runs the rules without one.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import rule

from tools.torture.repo_tests import use_repo_tests

use_repo_tests()
from tests.store.cutfiles import CutFiles  # noqa: E402
from tests.unit.test_store_machine import DurableStoreMachine, StoreMachine  # noqa: E402


class MemoryOutbox(StoreMachine):
    """The memory backend: every rule but crash and reopen."""


class CrashingOutbox(DurableStoreMachine):
    """A durable backend: may be closed and reopened (``reboot``) or crash at any step."""

    crashes = 0  # over all instances: the harness reports it (a machine that never crashed proves little)

    def crash_store(self, rng: random.Random) -> None:  # a backend's way of dying
        raise NotImplementedError

    @rule(seed=st.integers(0, 2**32 - 1))
    def crash(self, seed: int) -> None:
        assert self.store is not None
        held, span = self.records(), self.store.seq_range()
        state = self.run(self.store.load_state())
        self.crash_store(random.Random(seed))
        type(self).crashes += 1
        self.store = None
        self.store = self.open()
        assert self.store.boot_id == self.boot + 1, "boot id after a crash"
        self.boot = self.store.boot_id
        assert self.records() == held, "outbox after a crash differs from what was durable"
        assert self.store.seq_range() == span
        assert self.store.next_seq() > self.last_seq, "a seq could be handed out twice"
        after = self.run(self.store.load_state())
        assert {k: (e.value, e.version, e.origin) for k, e in after.items()} == {
            k: (e.value, e.version, e.origin) for k, e in state.items()
        }, "state after a crash"


class LogOutbox(CrashingOutbox):
    backend = "log"
    fsync = True

    def __init__(self) -> None:
        super().__init__()
        self.files = CutFiles(cut_at=None)

    def open(self) -> Any:
        from device.store.log import LogStore

        store = LogStore(self.files, budget_bytes=self.budget, fsync=self.fsync, segment_bytes=512)
        self.run(store.open())
        return store

    def crash_store(self, rng: random.Random) -> None:
        self.files = self.files.crash(rng)  # the old store object is simply never used again


class SqliteOutbox(CrashingOutbox):
    backend = "sqlite"

    def crash_store(self, rng: random.Random) -> None:
        store: Any = self.store
        self.run(kill_sqlite(store))


async def kill_sqlite(store: Any) -> None:
    """A sqlite store as a killed process leaves it: the pending commit cancelled, no orderly close."""
    committer = store._committer
    if committer is not None:
        committer.cancel()
        await asyncio.gather(committer, return_exceptions=True)
    await store._drop_connection()


MACHINES = {"outbox-memory": MemoryOutbox, "outbox-log": LogOutbox, "outbox-sqlite": SqliteOutbox}
