"""The frame-difference motion detector (device/core/motion.py) on synthetic scenes (hw/sim/scene.py).

Recall and precision are measured against each built-in scene's ground truth;
the floors asserted here are well below what the detector reaches (the
camera-fps benchmark prints the figures), so noise cannot flip them.
"""

from device.core.motion import MotionDetector
from hw.sim.scene import Scene, scene_names
from hw.sim.scenescore import match, score
from tests.pure._check import raises

W, H = 32, 24  # small: this file also runs under MicroPython
FRAME_MS = 200


def _flat(level, n=W * H):  # type: ignore[no-untyped-def]
    return bytearray(bytes((level,)) * n)  # MicroPython has no bytearray * int


def test_first_frame_only_primes():
    d = MotionDetector(W, H)
    assert d.step(_flat(100), 0) is False
    assert d.step(_flat(100), 200) is False
    assert d.last_permille == 0


def test_a_blob_is_motion_after_confirmation():
    d = MotionDetector(W, H, confirm_frames=2)
    d.step(_flat(100), 0)
    blob = _flat(100)
    for i in range(W * 4):  # 4 rows of 32: 12.5 % of the frame
        blob[i] = 200
    assert d.step(blob, 200) is False  # one frame is not enough
    assert d.step(blob, 400) is True
    assert d.step(blob, 600) is False  # the same streak is one event
    assert d.events == 1 and d.last_permille >= 100


def test_a_uniform_light_change_is_not_motion():
    d = MotionDetector(W, H, confirm_frames=1)
    d.step(_flat(100), 0)
    for i, level in enumerate((140, 60, 180)):
        assert d.step(_flat(level), 200 * (i + 1)) is False
    assert d.events == 0


def test_changes_below_delta_or_fraction_are_not_motion():
    d = MotionDetector(W, H, delta=20, min_permille=50, confirm_frames=1)
    d.step(_flat(100), 0)
    small = _flat(100)
    for i in range(W * H):
        small[i] = 100 + (19 if i % 2 else -19)
    assert d.step(small, 200) is False
    few = _flat(100)
    for i in range(30):  # 30 of 768 = 39 per mille < 50
        few[i] = 250
    assert d.step(few, 400) is False


def test_cooldown_suppresses_a_second_event():
    d = MotionDetector(W, H, confirm_frames=1, cooldown_ms=5000, adapt_every=1000)
    d.step(_flat(100), 0)
    assert d.step(_flat(100)[: W * H // 2] + _flat(220, W * H // 2), 200) is True
    assert d.step(_flat(100), 400) is False  # back to quiet: the streak ends
    assert d.step(_flat(100)[: W * H // 2] + _flat(20, W * H // 2), 1000) is False
    assert d.suppressed == 1
    d.step(_flat(100), 5100)
    assert d.step(_flat(100)[: W * H // 2] + _flat(220, W * H // 2), 5400) is True


def test_background_absorbs_a_lasting_change():
    d = MotionDetector(W, H, confirm_frames=1, adapt_every=1, cooldown_ms=0)
    d.step(_flat(100), 0)
    changed = _flat(100)[: W * H // 2] + _flat(200, W * H // 2)
    moving = [d.step(changed, 200 * (i + 1)) or d.moving for i in range(40)]
    assert moving[0] and not moving[-1]


def test_bad_settings_and_frames_are_refused():
    raises(ValueError, MotionDetector, W, H, delta=0)
    raises(ValueError, MotionDetector, W, H, min_permille=0)
    raises(ValueError, MotionDetector, W, H, stride=0)
    raises(ValueError, MotionDetector(W, H).step, bytearray(10), 0)


def test_recall_and_precision_on_every_built_in_scene():
    for name in scene_names():
        for stride in (1, 2):
            result = score(MotionDetector(W, H, stride=stride), Scene(name, W, H, 7), FRAME_MS)
            assert result["recall_permille"] >= 900, (name, stride, result)
            assert result["precision_permille"] >= 750, (name, stride, result)


def test_quiet_scene_has_no_truth_and_no_events():
    scene = Scene("quiet", W, H, 3)
    assert scene.truth == []
    assert score(MotionDetector(W, H), scene, FRAME_MS, periods=2)["events"] == 0


def test_scene_frames_are_deterministic_and_in_range():
    a, b = Scene("walk", W, H, 5), Scene("walk", W, H, 5)
    fa, fb = bytearray(W * H), bytearray(W * H)
    a.render_into(fa, 9000)
    b.render_into(fb, 9000)
    assert fa == fb
    raises(ValueError, Scene, "nope", W, H)


def test_match_counts_misses_and_false_alarms():
    r = match([500, 5000], [(400, 900), (2000, 2500)], 10000, 1, 100)
    assert (r["found"], r["false_alarms"], r["recall_permille"], r["precision_permille"]) == (1, 1, 500, 500)
