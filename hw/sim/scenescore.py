"""Score a motion detector against a scene's ground truth: recall and precision of events.

A truth interval is *found* when an event starts inside it or within
``slack_ms`` after it ends (confirmation takes a frame or two). An event is
*true* when it falls in some interval's window, else a false alarm.
"""

from hw.sim.scene import Scene


def score(detector, scene: Scene, frame_ms: int, periods: int = 1) -> dict:  # type: ignore[no-untyped-def]
    """Run ``detector`` over ``periods`` loops of ``scene``; counts and per-mille rates."""
    buf = bytearray(scene.width * scene.height)
    events = []
    end = scene.period_ms * periods
    t = 0
    while t < end:
        scene.render_into(buf, t)
        if detector.step(buf, t):
            events.append(t)
        t += frame_ms
    return match(events, scene.truth, scene.period_ms, periods, frame_ms * 3)


def match(events: list, truth: list, period_ms: int, periods: int, slack_ms: int) -> dict:
    windows = []
    for p in range(periods):
        for start, stop in truth:
            windows.append((p * period_ms + start, p * period_ms + stop + slack_ms))
    found = 0
    for lo, hi in windows:
        for t in events:
            if lo <= t <= hi:
                found += 1
                break
    true_events = 0
    for t in events:
        for lo, hi in windows:
            if lo <= t <= hi:
                true_events += 1
                break
    return {
        "truth": len(windows),
        "found": found,
        "events": len(events),
        "false_alarms": len(events) - true_events,
        "recall_permille": found * 1000 // len(windows) if windows else 1000,
        "precision_permille": true_events * 1000 // len(events) if events else 1000,
        "event_ms": events,
    }
