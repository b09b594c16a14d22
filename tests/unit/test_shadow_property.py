"""Property: any interleaving of local changes, cloud changes and (stale) desired documents.

A device (a real ``MemoryStore`` state cache, merging with ``shadow.merge`` as
the sync engine does) and a cloud (its own hybrid logical clock and a
desired document with a version) change the same keys in a random order,
with wall clocks that drift apart and a device that may start with no wall
time at all. Desired documents reach the device late, twice, or out of
date; the cloud sometimes takes in the device's reported document
(``latest_wins``: the higher stamp wins, a tie goes to the device).

After every step:

* a ``device_wins`` key holds the last value set locally, whatever the cloud did;
* a ``latest_wins`` key never holds a stamp older than the last local change
  (a local change is replaced only by a newer one);
* a document already applied never changes a ``cloud_wins`` key.

At the end, after one more exchange, ``latest_wins`` keys on both sides hold
the value of the newest write of all (by stamp, ties to the device) and
``cloud_wins`` keys hold the cloud's value.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from device.core import shadow
from device.hlc import HLC
from device.store.memory import MemoryStore

POLICIES = {"limit": "device_wins", "mode": "latest_wins", "setpoint": "latest_wins", "schedule": "cloud_wins"}
KEYS = sorted(POLICIES)
LATEST = [k for k in KEYS if POLICIES[k] == "latest_wins"]
T0 = 1_700_000_000_000


def drive(coro: Any) -> Any:
    """Run a MemoryStore coroutine that never suspends."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise AssertionError("MemoryStore suspended")


class World:
    def __init__(self, device_wall_from: int, skew_ms: int) -> None:
        self.store = MemoryStore()
        drive(self.store.open())
        self.now = 0  # ms since the start
        self.device_wall_from = device_wall_from  # no wall clock on the device before this
        self.skew_ms = skew_ms  # device wall clock minus cloud wall clock
        self.cloud_hlc = HLC()
        self.desired: dict[str, Any] = {"version": 0, "state": {}}
        self.history: list[dict[str, Any]] = []  # every desired document published
        self.last_applied = 0
        self.writes: dict[str, list[tuple[int, int, Any]]] = {k: [] for k in KEYS}  # (stamp, by_device, value)
        self.last_local: dict[str, tuple[int, Any]] = {}

    def device_wall(self) -> int | None:
        return T0 + self.now + self.skew_ms if self.now >= self.device_wall_from else None

    def local(self, key: str) -> Any:
        return drive(self.store.get_state(key))

    # -- steps --------------------------------------------------------------------

    def local_change(self, key: str, value: int) -> None:
        entry = drive(self.store.put_state(key, value, "lan", self.device_wall()))
        self.writes[key].append((entry.stamp, 1, value))
        self.last_local[key] = (entry.stamp, value)

    def cloud_change(self, key: str, value: int) -> None:
        stamp = self.cloud_hlc.now(T0 + self.now)
        self._publish(key, value, stamp)
        self.writes[key].append((stamp, 0, value))

    def _publish(self, key: str, value: Any, stamp: int) -> None:
        state = dict(self.desired["state"])
        state[key] = {"value": value, "stamp": stamp}
        self.desired = {"version": self.desired["version"] + 1, "state": state}
        self.history.append(self.desired)

    def deliver(self, doc: dict[str, Any]) -> None:
        """The device merges ``doc`` as the sync engine does."""
        before = {k: self.local(k) for k in KEYS}
        local = drive(self.store.load_state())
        changes, _, applied = shadow.merge(local, doc, POLICIES, "latest_wins", self.last_applied)
        stale = doc["version"] <= self.last_applied
        for key, value, stamp in changes:
            drive(self.store.put_state(key, value, "cloud", self.device_wall(), stamp))
        self.last_applied = applied
        if stale:
            for key in KEYS:
                if POLICIES[key] == "cloud_wins":
                    assert self.local(key) == before[key], "a stale document changed %s" % key

    def adopt_reported(self) -> None:
        """The cloud takes in the device's newer latest_wins values (ties to the device)."""
        reported = shadow.reported_doc(drive(self.store.load_state()))
        for key in LATEST:
            mine = reported["state"].get(key)
            theirs = self.desired["state"].get(key)
            if mine is None:
                continue
            self.cloud_hlc.observe(mine["stamp"])
            if theirs is None or (mine["stamp"] >= theirs["stamp"] and mine["value"] != theirs["value"]):
                self._publish(key, mine["value"], mine["stamp"])

    # -- invariants -----------------------------------------------------------------

    def check(self) -> None:
        for key in KEYS:
            entry = self.local(key)
            policy = POLICIES[key]
            if policy == "device_wins":
                want = self.last_local.get(key)
                if want is None:
                    assert entry is None, "the cloud set a device_wins key"
                else:
                    assert entry is not None and entry.value == want[1], "the cloud changed a device_wins key"
            elif policy == "latest_wins" and key in self.last_local:
                assert entry is not None and entry.stamp >= self.last_local[key][0], (
                    "a newer local change was clobbered"
                )


keys = st.sampled_from(KEYS)
values = st.integers(0, 5)
steps = st.one_of(
    st.tuples(st.just("local"), keys, values, st.sampled_from([0, 0, 1, 700, 5000])),
    st.tuples(st.just("cloud"), keys, values, st.sampled_from([0, 0, 1, 700, 5000])),
    st.tuples(st.just("deliver"), st.integers(0, 3)),  # 0: the current document; n: n documents back
    st.tuples(st.just("adopt")),
)


@settings(max_examples=400, deadline=None)
@given(
    plan=st.lists(steps, max_size=40),
    device_wall_from=st.sampled_from([0, 10**9, 20_000]),
    skew_ms=st.one_of(st.just(0), st.integers(-30_000, 30_000)),  # 0: equal stamps happen, ties are decided
)
def test_any_interleaving_converges_and_never_clobbers_newer_local_changes(
    plan: list[tuple[Any, ...]], device_wall_from: int, skew_ms: int
) -> None:
    w = World(device_wall_from, skew_ms)
    for step in plan:
        kind = step[0]
        if kind == "local":
            w.now += step[3]
            w.local_change(step[1], step[2])
        elif kind == "cloud":
            w.now += step[3]
            w.cloud_change(step[1], step[2])
        elif kind == "deliver":
            back = step[1]
            if back < len(w.history):
                w.deliver(w.history[-1 - back])
        else:
            w.adopt_reported()
        w.check()

    # One more exchange: the current document, the cloud takes in what is newer on the device,
    # and the cloud asserts its document once more (a new version).
    w.deliver(w.desired)
    w.check()
    w.adopt_reported()
    w.desired = {"version": w.desired["version"] + 1, "state": w.desired["state"]}
    w.deliver(w.desired)
    w.check()

    for key in KEYS:
        entry = w.local(key)
        policy = POLICIES[key]
        if policy == "latest_wins" and w.writes[key]:
            newest = max(w.writes[key], key=lambda t: (t[0], t[1]))
            assert entry is not None and entry.value == newest[2]
            assert w.desired["state"][key]["value"] == newest[2]
        elif policy == "cloud_wins" and key in w.desired["state"]:
            assert entry is not None and entry.value == w.desired["state"][key]["value"]
