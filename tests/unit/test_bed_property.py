"""Property: random button / cloud / LAN / fault sequences never push a bed side past its limits,
never hold an extreme setting longer than allowed, and never leave the base raised past its timeout.

Runs the pure envelope and law on a fake clock with a tiny plant (``tests/pure/_bed_loop.py``),
one tick per simulated second. The pad heater is strong (it would settle near 114 C), so only
the envelope and the law keep the pad at ``max_c``. Timeouts are shortened so that sequences of a
few simulated minutes cross them.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from device.core import bed as law
from tests.pure._bed_loop import SEC, BedLoop

RAISED_MAX_MS = 60_000
EXTREME_MAX_MS = 60_000
EXTREME_REST_MS = 30_000
TRAVEL_MS = 50_000 + 2 * SEC  # full travel at 2 %/s, plus a tick either side

SOURCES = st.sampled_from(["button", "cloud", "lan", "schedule"])
TARGETS = st.sampled_from(["left.setpoint_c", "right.setpoint_c", "base.head", "base.foot", "base.stop"])
VALUES = st.one_of(
    st.floats(min_value=-50, max_value=150, allow_nan=False),
    st.sampled_from([float("nan"), float("inf"), None, "hot", True, 43.0, 100.0, 0.0]),
)
REQUEST = st.tuples(st.just("request"), SOURCES, TARGETS, VALUES)
TEMP_FAULT = st.tuples(
    st.just("temp_fault"), st.sampled_from(law.SIDES), st.sampled_from([None, float("nan"), 150.0, -50.0, "clear"])
)
BASE_FAULT = st.tuples(
    st.just("base_fault"), st.sampled_from(law.SECTIONS), st.sampled_from(["stall", "none", "stuck", "clear"])
)
WAIT = st.tuples(st.just("wait"), st.integers(min_value=1, max_value=180))
ACTIONS = st.lists(st.one_of(REQUEST, REQUEST, WAIT, WAIT, WAIT, TEMP_FAULT, BASE_FAULT), min_size=1, max_size=20)


class Watch:
    """What the property checks, tick by tick, from the plant's truth."""

    def __init__(self, loop: BedLoop) -> None:
        self.loop = loop
        self.extreme_ms = {side: 0 for side in law.SIDES}
        self.calm_ms = {side: 0 for side in law.SIDES}
        self.raised_ms = 0
        self.base_faults_seen = False

    def check(self) -> None:
        loop, s = self.loop, self.loop.s
        for side in law.SIDES:
            assert s["min_c"] <= loop.effective[side] <= s["max_c"]
            assert loop.temps[side] <= s["max_c"] + 0.1, (side, loop.temps[side])
            assert not (loop.sides[side].heat and loop.sides[side].cool)
            sp = loop.effective[side]
            if sp > s["extreme_high_c"] or sp < s["extreme_low_c"]:
                self.extreme_ms[side] += SEC
                self.calm_ms[side] = 0
            else:
                self.calm_ms[side] += SEC
                if self.calm_ms[side] >= EXTREME_REST_MS:
                    self.extreme_ms[side] = 0
            assert self.extreme_ms[side] <= EXTREME_MAX_MS + SEC, side
        assert loop.up_after_timeout == 0
        if any(p > s["base_flat_pct"] for p in loop.pos.values()):
            self.raised_ms += SEC
        else:
            self.raised_ms = 0
        if not self.base_faults_seen:
            assert self.raised_ms <= RAISED_MAX_MS + TRAVEL_MS, self.raised_ms


def _run(loop: BedLoop, watch: Watch, seconds: int) -> None:
    for _ in range(seconds):
        loop.tick()
        loop.plant(SEC)
        watch.check()


@settings(max_examples=200, deadline=None)
@given(actions=ACTIONS)
def test_random_sequences_stay_inside_the_envelope(actions: list[tuple[Any, ...]]) -> None:
    loop = BedLoop(raised_max_ms=RAISED_MAX_MS, extreme_max_ms=EXTREME_MAX_MS, extreme_rest_ms=EXTREME_REST_MS)
    loop.heat_c_s = 0.05
    watch = Watch(loop)
    for action in actions:
        kind = action[0]
        if kind == "request":
            loop.request(action[1], action[2], action[3])
        elif kind == "wait":
            _run(loop, watch, action[1])
        elif kind == "temp_fault":
            if action[2] == "clear":
                loop.temp_fault.pop(action[1], None)
            else:
                loop.temp_fault[action[1]] = action[2]
        else:
            section, fault = action[1], action[2]
            if section in loop.stalled:
                loop.stalled.remove(section)
            loop.pos_fault.pop(section, None)
            if fault == "stall":
                loop.stalled.append(section)
            elif fault != "clear":
                loop.pos_fault[section] = fault
            watch.base_faults_seen = watch.base_faults_seen or fault != "clear"
    _run(loop, watch, 1)
