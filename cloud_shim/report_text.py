"""The simulation report's words and numbers: metric meanings, verdict, formatting, terminal table.

Shared by the terminal summary (``summary_table``, printed at the end of
``brickproof sim``) and the HTML page (``cloud_shim/report.py``). Pure
functions of the ``metrics.json`` dict; no matplotlib here.
"""

from __future__ import annotations

import json
import math
from typing import Any

# What each metric means, in the order the tables show them; unknown keys follow, sorted.
METRIC_HELP = {
    "scenario": "scenario name",
    "seed": "seed of the fault timeline and device picks",
    "devices": "devices in the fleet",
    "speed": "pacing: simulated seconds per real second",
    "recovery_speed": "pacing after the last fault, while the fleet resyncs",
    "sim_s": "simulated time covered",
    "wall_s": "real time the run took",
    "records_created": "outbox records the devices created",
    "records_delivered": "records the cloud ledger received (first deliveries)",
    "records_pending": "records still in an outbox at the end (neither lost nor delivered yet)",
    "lost": "records created but neither delivered nor folded into an aggregate",
    "lost_examples": "a few lost records, to start looking",
    "duplicated": "the same record delivered twice with different content",
    "redelivered": "QoS 1 redeliveries of the same record, absorbed by the cloud's dedupe",
    "order_violations": "records that arrived after a later one of the same lane",
    "compacted": "records folded into telemetry aggregates while offline",
    "control_gaps": "control ticks that came late or not at all",
    "max_tick_latency_ms": "worst lateness of a control tick",
    "ticks": "control ticks run, all devices",
    "slow_ticks": "control ticks that ended more than 50 ms after they were due",
    "shadow_converged_s": "after the last fault ended: until every shadow had no delta",
    "peak_connects_per_s": "most connection attempts in one simulated second",
    "peak_connects_after_outage_per_s": "the same, after the last fault ended: the reconnect storm",
    "herd_cap_per_s": "the reconnect rate the fleet is designed to stay under",
    "spread_s": "the per-device reconnect spread (simulated seconds); the herd cap is devices / spread",
    "shards": "processes the fleet ran in (brickproof sim --shards)",
    "peak_connects_per_real_s": "most connections the broker saw in one real second",
    "peak_connects_after_outage_per_real_s": "the same, after the last fault ended (real seconds)",
    "resync_s": "after the last fault ended: until every outbox was drained",
    "fault_end_s": "when the last fault ended (simulated time); the bounds count from here",
    "bounds_s": "the scenario's bounds",
    "reboots": "device reboots (power events)",
    "apps": "devices per app",
    "bed": "beds: the safety envelope judged from the simulated truth (pads, base sections)",
    "clips": "cameras: clips made, delivered whole to the cloud, waiting, dropped by the ring's budget, lost",
    "log_lines": "device log lines by kind (first line of the kind: how many); the terminal shows each kind once",
    "shadow": "the shadow service's counters",
    "commands": "commands issued by the cloud and how they ended",
    "ok": "every invariant held",
}
INVARIANT_HELP = {
    "no_control_gap": ("the control loop never stopped", "control_gaps"),
    "no_loss": ("no record was lost", "lost"),
    "no_duplicate": ("no record was delivered twice", "duplicated"),
    "shadow_converged": ("every shadow converged within the scenario's bound", "shadow_converged_s"),
    "in_order": ("every lane arrived in order", "order_violations"),
    "resynced": ("every outbox drained within the scenario's bound", "resync_s"),
    "bed_envelope": ("every bed stayed inside its safety envelope", ""),
    "clips_exactly_once": ("every clip sent was delivered whole exactly once", ""),
}


def verdict(metrics: dict[str, Any]) -> tuple[bool, list[str]]:
    """(passed, names of the broken invariants): False breaks one; None means not evaluated.

    A run passes when nothing is broken and the runner said so (``ok``) or at
    least evaluated some invariant: metrics without any verdict do not pass.
    """
    invariants = section(metrics, "invariants")
    broken = sorted(k for k, v in invariants.items() if v is False)
    ok = metrics.get("ok")
    return ok is not False and not broken and (ok is True or bool(invariants)), broken


def section(metrics: dict[str, Any], key: str) -> dict[str, Any]:
    value = metrics.get(key)
    return value if isinstance(value, dict) else {}


def is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def fmt_duration(seconds: float) -> str:
    """12.5 s, 13.7 min, 14.0 h: the unit a reader thinks in."""
    if abs(seconds) < 120:
        return "%.1f s" % seconds
    if abs(seconds) < 7200:
        return "%.1f min" % (seconds / 60)
    return "%.1f h" % (seconds / 3600)


def fmt_value(key: str, value: Any) -> str:
    """A metric value for people: durations with units, counts with separators, None as n/a."""
    if value is None or is_nan(value):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float) and key.endswith("_per_s"):
        return "%g/s" % value
    if isinstance(value, int | float) and key.endswith("_s"):
        return fmt_duration(float(value))
    if isinstance(value, int | float) and key.endswith("_ms"):
        return "%.1f ms" % value
    if isinstance(value, int) and key != "seed":
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _ordered(section: dict[str, Any]) -> list[str]:
    """A nested section's keys, the totals first (``issued`` before how commands ended)."""
    first = [k for k in ("issued", "total") if k in section]
    return first + sorted(k for k in section if k not in first)


def metric_rows(metrics: dict[str, Any]) -> list[tuple[str, Any]]:
    """Every metric but the invariants as (dotted key, value), nested dicts flattened."""
    order = [k for k in METRIC_HELP if k in metrics] + sorted(k for k in metrics if k not in METRIC_HELP)
    rows: list[tuple[str, Any]] = []
    for key in order:
        value = metrics[key]
        if key == "invariants":
            continue
        if isinstance(value, dict) and value:
            rows.extend(("%s.%s" % (key, sub), value[sub]) for sub in _ordered(value))
        else:
            rows.append((key, value))
    return rows


def state_word(invariant: Any) -> str:
    return "PASS" if invariant is True else "FAIL" if invariant is False else "n/a"


def no_verdict(metrics: dict[str, Any]) -> str:
    return "the run reports ok = false" if metrics.get("ok") is False else "no verdict in metrics.json"


def broken_phrase(metrics: dict[str, Any], name: str) -> str:
    what, metric = INVARIANT_HELP.get(name, (name.replace("_", " "), ""))
    figure = " (%s = %s)" % (metric, fmt_value(metric, metrics[metric])) if metric in metrics else ""
    return "%s: not %s%s" % (name, what, figure) if name in INVARIANT_HELP else name + figure


def summary_table(metrics: dict[str, Any]) -> str:
    """The run's figures and verdict as an aligned block of text for the terminal."""
    m = metrics

    def v(key: str) -> str:
        return fmt_value(key, m.get(key))

    def extra(label: str, key: str) -> str:  # a figure only some runners report
        return "  %s %s" % (label, v(key)) if key in m else ""

    bounds = section(m, "bounds_s")

    def bound(name: str) -> str:
        return " (bound %s)" % fmt_value(name + "_s", bounds[name]) if name in bounds else ""

    created, delivered = v("records_created"), v("records_delivered")
    rows = [
        ("scenario", "%s  seed %s  %s devices  speed %s" % (v("scenario"), v("seed"), v("devices"), v("speed"))),
        ("time", "%s simulated in %s wall" % (v("sim_s"), v("wall_s"))),
        ("records", "created %s  delivered %s  compacted %s" % (created, delivered, v("compacted"))
         + extra("pending", "records_pending")),
        ("integrity", "lost %s  duplicated %s" % (v("lost"), v("duplicated"))
         + extra("redelivered", "redelivered") + extra("out of order", "order_violations")),
        ("control", "gaps %s  worst tick latency %s" % (v("control_gaps"), v("max_tick_latency_ms"))
         + extra("slow (> 50 ms)", "slow_ticks")),
        ("shadow", "converged %s after the last fault%s" % (v("shadow_converged_s"), bound("shadow_converged"))),
        ("reconnects", "peak %s  herd cap %s" % (v("peak_connects_per_s"), v("herd_cap_per_s"))
         + extra("after the outage", "peak_connects_after_outage_per_s")),
        ("resync", "%s after the last fault%s" % (v("resync_s"), bound("resync"))),
    ]  # fmt: skip
    apps = section(m, "apps")
    if len(apps) > 1:
        rows.insert(1, ("apps", "  ".join("%s %s" % (k, fmt_value(k, apps[k])) for k in sorted(apps))))
    bed = section(m, "bed")
    if bed.get("beds"):
        rows.append(("beds", "envelope breaches %s  pads %s..%s C  longest raised %s  stalled sections %s" % (
            bed["breaches"], bed["pad_min_c"], bed["pad_max_c"], fmt_duration(bed["longest_raised_s"]),
            bed["stalled_sections"])))  # fmt: skip
    clips = section(m, "clips")
    if clips.get("cameras"):
        names = ("made", "delivered", "waiting", "dropped_on_device", "lost", "duplicated")
        rows.append(("clips", "  ".join("%s %s" % (k.replace("_", " "), fmt_value(k, clips[k])) for k in names)))
    log_lines = section(m, "log_lines")
    if log_lines:
        lines = sum(n for n in log_lines.values() if isinstance(n, int))
        rows.append(("device log", "%s lines of %d kinds (each kind shown once)" % (f"{lines:,}", len(log_lines))))
    commands = section(m, "commands")
    if commands:
        shown = [k for k in _ordered(commands) if k == "issued" or commands[k]]  # the zeros are on the page
        rows.append(("commands", "  ".join("%s %s" % (k, fmt_value(k, commands[k])) for k in shown)))
    invariants = section(m, "invariants")
    width = max([len(str(name)) for name in invariants] + [0])
    for name in sorted(invariants):
        rows.append(("invariant", "%s  %s" % (str(name).ljust(width), state_word(invariants[name]))))
    passed, broken = verdict(m)
    result = "PASS" if passed else "FAIL" + (" (%s)" % ", ".join(broken) if broken else " (%s)" % no_verdict(m))
    rows.append(("RESULT", result))
    label = max(len(r[0]) for r in rows)
    return "\n".join("%s  %s" % (name.ljust(label), text) for name, text in rows)
