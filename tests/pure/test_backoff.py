"""Backoff: capped exponential delays, full jitter, and the 'healthy run' reset rule."""

from device.core.backoff import Backoff
from device.errors import ConfigError
from device.rand import Rand
from tests.pure._check import raises


def test_delays_double_from_base_up_to_cap():
    b = Backoff(base_ms=1000, cap_ms=10000, factor=2)
    delays = [b.next_delay_ms() for _ in range(7)]
    assert delays == [1000, 2000, 4000, 8000, 10000, 10000, 10000]
    assert b.attempts == 7


def test_fractional_factor_gives_whole_ms():
    b = Backoff(base_ms=100, cap_ms=1000, factor=1.5)
    delays = [b.next_delay_ms() for _ in range(7)]
    assert delays == [100, 150, 225, 337, 506, 759, 1000]
    for d in delays:
        assert isinstance(d, int)


def test_many_attempts_stay_at_cap():
    b = Backoff(base_ms=1, cap_ms=5000)
    for _ in range(5000):
        d = b.next_delay_ms()
    assert d == 5000


def test_ceiling_does_not_count_an_attempt():
    b = Backoff(base_ms=500, cap_ms=4000)
    assert b.ceiling_ms() == 500
    assert b.ceiling_ms() == 500
    assert b.attempts == 0
    b.next_delay_ms()
    assert b.ceiling_ms() == 1000


def test_jitter_stays_within_zero_and_ceiling():
    b = Backoff(base_ms=1000, cap_ms=8000, jitter=True)
    rand = Rand(7)
    seen_below = False
    for attempt in range(40):
        ceiling = b.ceiling_ms()
        d = b.next_delay_ms(rand)
        assert isinstance(d, int)
        assert 0 <= d <= ceiling, (attempt, d, ceiling)
        if d < ceiling:
            seen_below = True
    assert seen_below  # it really jitters


def test_jitter_is_reproducible_from_the_seed():
    a = Backoff(jitter=True)
    b = Backoff(jitter=True)
    ra = Rand(99)
    rb = Rand(99)
    assert [a.next_delay_ms(ra) for _ in range(10)] == [b.next_delay_ms(rb) for _ in range(10)]


def test_jitter_without_rand_is_refused():
    b = Backoff(jitter=True)
    raises(ValueError, b.next_delay_ms)


def test_short_run_does_not_reset():
    b = Backoff(base_ms=1000, cap_ms=60000, healthy_ms=30000)
    b.next_delay_ms()
    b.next_delay_ms()
    b.next_delay_ms()
    assert b.record_success(29999) is False
    assert b.attempts == 3
    assert b.next_delay_ms() == 8000


def test_healthy_run_resets():
    b = Backoff(base_ms=1000, healthy_ms=30000)
    for _ in range(4):
        b.next_delay_ms()
    assert b.record_success(30000) is True
    assert b.attempts == 0
    assert b.next_delay_ms() == 1000


def test_reset():
    b = Backoff()
    b.next_delay_ms()
    b.reset()
    assert b.next_delay_ms() == 1000


def test_bad_settings_name_the_setting():
    e = raises(ConfigError, Backoff, base_ms=0)
    assert e.path == "backoff.base_ms"
    e = raises(ConfigError, Backoff, base_ms=1000, cap_ms=500)
    assert e.path == "backoff.cap_ms"
    e = raises(ConfigError, Backoff, factor=0.5)
    assert e.path == "backoff.factor"
    e = raises(ConfigError, Backoff, healthy_ms=-1)
    assert e.path == "backoff.healthy_ms"
