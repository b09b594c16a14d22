"""Property: over 24 simulated hours, with random weather and settings, the control law keeps the room
in its band once settled, never breaks compressor protection and never lets the room freeze.

Runs the pure control law against the simulated room directly (no asyncio), so a day takes well under
a second. The bounds are derived from the physics, not tuned: once settled, the room may leave the
hysteresis band only by what the room can drift while a minimum on/off time (plus one tick) holds the
heater, plus a margin for sensor noise.
"""

from __future__ import annotations

from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from device.apps.thermostat import SwitchWatch
from device.apps.thermostat_settings import SETTINGS_SPEC
from device.core import thermostat as law
from device.rand import Rand
from device.schema import validate
from hw.sim.outside import OutsideProfile
from hw.sim.room import Room

DAY_MS = 86_400_000
TICK_MS = 5_000
POWER_W = 5_000.0
GAIN_W = 100.0
LOSS_W_PER_K = 100.0
MASS_J_PER_K = 2.0e6
NOISE_C = 0.05
NOISE_MARGIN_C = 0.3  # 6 sigma of sensor noise


class FakeClock:
    def __init__(self) -> None:
        self.now = 0

    def now_ms(self) -> int:
        return self.now


def law_settings(**over: Any) -> dict[str, Any]:
    s: dict[str, Any] = validate(SETTINGS_SPEC, over, "apps.thermostat")  # type: ignore[assignment]
    s["has_heater"] = True
    s["has_cooler"] = False
    return s


def simulate(s: dict[str, Any], outside: OutsideProfile, initial_c: float, sp: float, seed: int) -> dict[str, Any]:
    clock = FakeClock()
    room = Room(
        clock,
        outside,
        initial_c=initial_c,
        thermal_mass_j_per_k=MASS_J_PER_K,
        loss_w_per_k=LOSS_W_PER_K,
        internal_gain_w=GAIN_W,
    )
    room.add_load("heater", POWER_W)
    rand = Rand(seed)
    watch = SwitchWatch(s["min_on_ms"], s["min_off_ms"])
    state = law.ThermostatState(0)
    targets = law.Targets("heat", sp, sp + 4)
    half = s["hysteresis_c"] / 2
    settled_at = None
    worst_low = worst_high = 0.0
    coldest = initial_c
    while clock.now <= DAY_MS:
        room.advance_to(clock.now)
        true_c = room.temp_c
        coldest = min(coldest, true_c)
        if settled_at is None and abs(true_c - sp) <= half:
            settled_at = clock.now + 3_600_000
        if settled_at is not None and clock.now >= settled_at:
            worst_low = max(worst_low, (sp - half) - true_c)
            worst_high = max(worst_high, true_c - (sp + half))
        reading = true_c + rand.gauss(0.0, NOISE_C)
        state, d = law.step(s, state, reading, targets, clock.now)
        if d.heater_changed:
            room.set_load("heater", d.heater_on)
            watch.command(d.heater_on, clock.now, d.forced_off)
        clock.now += TICK_MS
    return {"settled_at": settled_at, "low": worst_low, "high": worst_high, "watch": watch, "coldest": coldest}


@settings(max_examples=25, deadline=None)
@given(
    mean_c=st.floats(-12.0, 8.0),
    amplitude_c=st.floats(0.0, 8.0),
    coldest_hour=st.floats(0.0, 24.0),
    weather_c=st.floats(0.0, 2.0),
    sp=st.floats(16.0, 24.0),
    hysteresis_c=st.floats(0.2, 1.5),
    min_on_ms=st.integers(0, 600_000),
    min_off_ms=st.integers(0, 600_000),
    initial_c=st.floats(8.0, 26.0),
    seed=st.integers(1, 2**31),
)
def test_room_stays_in_band_and_compressor_rules_hold(
    mean_c: float,
    amplitude_c: float,
    coldest_hour: float,
    weather_c: float,
    sp: float,
    hysteresis_c: float,
    min_on_ms: int,
    min_off_ms: int,
    initial_c: float,
    seed: int,
) -> None:
    outside = OutsideProfile(mean_c, amplitude_c, coldest_hour, weather_c, Rand(seed))
    low_out, high_out = outside.bounds_c()
    # Heat-only: the room must not warm past the band by itself.
    assume(high_out + GAIN_W / LOSS_W_PER_K < sp - hysteresis_c)
    s = law_settings(hysteresis_c=hysteresis_c, min_on_ms=min_on_ms, min_off_ms=min_off_ms, stuck_ms=0)
    result = simulate(s, outside, initial_c, sp, seed)

    assert result["settled_at"] is not None, "never reached the setpoint within a day"
    hold_s = (max(min_on_ms, min_off_ms) + TICK_MS) / 1000
    rise_c_per_s = (POWER_W + GAIN_W + LOSS_W_PER_K * max(0.0, high_out - sp)) / MASS_J_PER_K
    fall_c_per_s = LOSS_W_PER_K * (sp + hysteresis_c - low_out) / MASS_J_PER_K
    assert result["high"] <= rise_c_per_s * hold_s + NOISE_MARGIN_C, result
    assert result["low"] <= fall_c_per_s * hold_s + NOISE_MARGIN_C, result

    watch = result["watch"]
    assert watch.min_on_violations == 0
    assert watch.min_off_violations == 0
    assert watch.forced_offs == 0  # no safety rule should fire on a healthy day
    assert result["coldest"] >= min(initial_c, 5.0)


@settings(max_examples=15, deadline=None)
@given(
    mean_c=st.floats(-25.0, -5.0),
    initial_c=st.floats(6.0, 12.0),
    seed=st.integers(1, 2**31),
    mode=st.sampled_from(["off", "cool", "heat"]),
)
def test_freeze_protection_whatever_the_mode_and_setpoint(
    mean_c: float, initial_c: float, seed: int, mode: str
) -> None:
    outside = OutsideProfile(mean_c, 5.0, 5.0, 1.0, Rand(seed))
    s = law_settings(stuck_ms=0)
    clock = FakeClock()
    room = Room(
        clock,
        outside,
        initial_c=initial_c,
        thermal_mass_j_per_k=MASS_J_PER_K,
        loss_w_per_k=LOSS_W_PER_K,
        internal_gain_w=GAIN_W,
    )
    room.add_load("heater", POWER_W)
    state = law.ThermostatState(0)
    targets = law.Targets(mode, 5.0, 30.0)  # the lowest setpoint the owner may choose
    while clock.now <= DAY_MS:
        room.advance_to(clock.now)
        assert room.temp_c >= s["freeze_c"], (clock.now, room.temp_c)
        state, d = law.step(s, state, room.temp_c, targets, clock.now)
        if d.heater_changed:
            room.set_load("heater", d.heater_on)
        clock.now += TICK_MS
