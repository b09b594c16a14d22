"""The link state machine, outage receipts, and the per-device reconnect phase."""

from device.core import linkstate as ls
from device.core.backoff import align_to_phase_ms, device_phase_ms
from tests.pure._check import raises


def test_boot_is_an_outage_that_ends_with_a_receipt():
    st = ls.LinkState(0, depth=5, compacted=0, wall_ms=None)
    assert st.state == ls.OFFLINE and not st.connected()
    assert st.move(ls.RESOLVING, 10) is None
    assert st.move(ls.CONNECTING, 20, "dns_nxdomain") is None
    receipt = st.move(ls.DEGRADED, 30, "", depth=7, compacted=2, wall_ms=1000)
    assert receipt["type"] == "outage"
    assert receipt["start_ms"] == 0 and receipt["end_ms"] == 30 and receipt["duration_ms"] == 30
    assert receipt["cause"] == "boot" and receipt["last_cause"] == "dns_nxdomain"
    assert receipt["attempts"] == 1
    assert receipt["outbox_depth_start"] == 5 and receipt["outbox_depth_end"] == 7
    assert receipt["compacted"] == 2 and receipt["via"] == ls.DEGRADED
    assert receipt["end_wall_ms"] == 1000
    assert st.connected() and st.outage is None and st.outage_ms(99) == 0


def test_loss_opens_a_new_outage_with_its_cause():
    st = ls.LinkState(0)
    st.move(ls.CONNECTING, 1)
    st.move(ls.ONLINE, 2)
    assert st.move(ls.OFFLINE, 100, "keepalive", depth=3, compacted=10) is None
    assert st.outage_ms(150) == 50
    st.move(ls.CONNECTING, 200, "")
    st.move(ls.CONNECTING, 300, "refused")
    receipt = st.move(ls.ONLINE, 400, depth=0, compacted=14)
    assert receipt["cause"] == "keepalive" and receipt["last_cause"] == "refused"
    assert receipt["attempts"] == 2 and receipt["duration_ms"] == 300
    assert receipt["compacted"] == 4 and receipt["outbox_depth_start"] == 3
    assert st.outages == 2  # the boot outage and this one
    assert st.causes["keepalive"] == 1 and st.causes["refused"] == 1


def test_forbidden_moves_are_bugs():
    st = ls.LinkState(0)
    raises(ValueError, st.move, ls.ONLINE, 1)
    st.move(ls.RESOLVING, 1)
    raises(ValueError, st.move, ls.DEGRADED, 2)
    raises(ValueError, st.move, "sideways", 2)


def test_degraded_to_online_is_not_a_new_outage():
    st = ls.LinkState(0)
    st.move(ls.CONNECTING, 1)
    assert st.move(ls.DEGRADED, 2) is not None
    assert st.move(ls.ONLINE, 3) is None
    assert st.counts[ls.ONLINE] == 1 and st.counts[ls.DEGRADED] == 1


def test_history_is_bounded():
    st = ls.LinkState(0)
    for i in range(200):
        st.move(ls.CONNECTING, i)
        st.move(ls.OFFLINE, i, "refused")
    assert len(st.history) == ls.HISTORY_LEN
    stats = st.stats(500)
    assert stats["state"] == ls.OFFLINE and stats["transitions"] == 400


def test_device_phase_is_stable_and_spreads_a_fleet():
    assert device_phase_ms("thermo-1", 30000) == device_phase_ms("thermo-1", 30000)
    assert device_phase_ms("x", 0) == 0
    # 1,000 devices over a 30 s spread: no one-second bucket holds more than ~4x its share.
    buckets = [0] * 30
    for i in range(1000):
        phase = device_phase_ms("dev-%d" % i, 30000)
        assert 0 <= phase < 30000
        buckets[phase // 1000] += 1
    assert max(buckets) <= 4 * 1000 // 30, buckets


def test_align_to_phase_waits_at_least_the_delay_and_lands_on_the_phase():
    for now in (0, 999, 12345):
        for delay in (0, 1, 500, 29999, 70000):
            got = align_to_phase_ms(now, delay, 7000, 30000)
            assert delay <= got < delay + 30000
            assert (now + got) % 30000 == 7000
    assert align_to_phase_ms(5, 100, 0, 0) == 100
