"""Hybrid logical clock: stamps are ints that only grow, with or without wall time."""

from device.hlc import COUNTER_BITS, HLC, make_stamp, physical_ms

WALL = 1_700_000_000_000  # ms: Nov 2023


def test_stamp_packs_wall_ms_and_a_counter():
    stamp = make_stamp(WALL, 5)
    assert stamp == WALL * (1 << COUNTER_BITS) + 5
    assert physical_ms(stamp) == WALL
    assert physical_ms(make_stamp(WALL)) == WALL
    assert make_stamp(WALL, 1) > make_stamp(WALL) and make_stamp(WALL + 1) > make_stamp(WALL, 65535)


def test_without_wall_time_the_counter_moves():
    clock = HLC()
    stamps = [clock.now() for _ in range(3)]
    assert stamps == [1, 2, 3]
    assert physical_ms(stamps[-1]) == 0  # made before wall time was known


def test_wall_time_ahead_is_taken_and_behind_is_ignored():
    clock = HLC()
    clock.now()
    ahead = clock.now(WALL)
    assert ahead == make_stamp(WALL)
    same = clock.now(WALL)  # same millisecond: the counter moves
    assert same == ahead + 1
    behind = clock.now(WALL - 60_000)  # wall clock stepped back (NTP correction)
    assert behind == same + 1
    unknown = clock.now(None)
    assert unknown == behind + 1
    later = clock.now(WALL + 5)
    assert later == make_stamp(WALL + 5) and physical_ms(later) == WALL + 5


def test_observe_moves_the_clock_past_foreign_stamps():
    clock = HLC()
    clock.now(WALL)
    cloud = make_stamp(WALL + 10_000, 3)
    clock.observe(cloud)
    assert clock.now() == cloud + 1
    clock.observe(make_stamp(WALL))  # older: no effect
    assert clock.now() == cloud + 2


def test_a_clock_restored_from_a_stamp_continues_after_it():
    stored = make_stamp(WALL, 9)
    clock = HLC(stored)
    assert clock.now() == stored + 1  # a reboot without wall time still stamps later
    restored = HLC()
    restored.observe(stored)
    assert restored.now(WALL - 1) == stored + 1


def test_stamps_strictly_increase_over_a_mixed_run():
    clock = HLC()
    last = 0
    walls = [None, None, WALL, WALL, None, WALL - 5, WALL + 1, None, WALL + 1000]
    for i in range(60):
        stamp = clock.now(walls[i % len(walls)])
        assert stamp > last
        last = stamp
