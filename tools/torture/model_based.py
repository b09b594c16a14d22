"""``model-based``: Hypothesis state machines run programmatically against simple models.

Machines (``tools/torture/model_outbox.py``, ``model_mqtt.py``): the outbox on the memory,
log and sqlite backends (append, ack, ack_seqs, compact, put_state, reopen, crash) and the
portable MQTT client's session against a scripted broker (connect with or without a kept
session, publish, acks, duplicate and stray acks, drops).

Each machine runs in chunks of examples, each chunk with its own seed derived from the
run's seed (same seed, same examples), until the size's example count or its wall bound:
``ci`` 40-100 examples x 20 steps per machine; ``long`` 1,000 examples x 50 steps, at most
``LONG_BOUND_S`` per machine (``bounded`` says when a machine stopped early). The first
failure of a machine stops it and is reported with Hypothesis's shrunk example.
"""

from __future__ import annotations

import time
import traceback
from typing import Any

from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis.reporting import with_reporter
from hypothesis.stateful import get_state_machine_test

NAME = "model-based"
SUMMARY = "Hypothesis state machines: outbox (3 backends, crash/reopen) and MQTT session vs models"

CI = {"outbox-memory": 100, "outbox-log": 75, "outbox-sqlite": 40, "mqtt-session": 100}
CI_STEPS = 20
LONG_EXAMPLES, LONG_STEPS = 1000, 50
CI_BOUND_S, LONG_BOUND_S = 12.0, 600.0  # per machine
COUNTERS = ("crashes", "resumed")  # class attributes a machine counts its telling rules in
PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink]  # no "explain": slow
CHUNK = 25  # examples per Hypothesis run (the wall bound is checked between runs)


def all_machines() -> dict[str, Any]:
    from tools.torture.model_mqtt import MACHINES as MQTT
    from tools.torture.model_outbox import MACHINES as OUTBOX

    return {**OUTBOX, **MQTT}


def run_machine(
    cls: Any, examples: int, steps: int, run_seed: int, bound_s: float, shrink: bool = True
) -> dict[str, Any]:
    """Run ``cls`` for up to ``examples`` examples; {"examples", "failures", "bounded", "example"}."""
    counted = [0]

    class Counted(cls):  # type: ignore[misc]
        def __init__(self) -> None:
            counted[0] += 1
            super().__init__()

    Counted.__name__ = cls.__name__

    def result(failures: int, bounded: int, example: str | None) -> dict[str, Any]:
        counters = {c: getattr(Counted, c) for c in COUNTERS if hasattr(Counted, c)}
        return {
            "examples": counted[0],
            "failures": failures,
            "bounded": bounded,
            "example": example,
            "counters": counters,
        }

    end = time.monotonic() + bound_s
    lines: list[str] = []  # what Hypothesis reports (the failing steps)

    def keep(line: object) -> None:
        lines.append(str(line))

    done = 0
    chunk_no = 0
    while done < examples:
        if time.monotonic() > end:
            return result(0, 1, None)
        n = min(CHUNK, examples - done)
        test = get_state_machine_test(
            Counted,
            settings=settings(
                max_examples=n,
                stateful_step_count=steps,
                deadline=None,
                database=None,
                report_multiple_bugs=False,
                phases=PHASES if shrink else [p for p in PHASES if p is not Phase.shrink],
                suppress_health_check=list(HealthCheck),
            ),
        )
        seed(run_seed * 1_000_003 + chunk_no)(test)
        lines.clear()
        try:
            with with_reporter(keep):
                test()
        except Exception as exc:  # a machine failed: keep the shrunk example Hypothesis printed
            notes = list(getattr(exc, "__notes__", []))
            summary = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            return result(1, 0, "\n".join([*(notes or lines), summary]))  # (the notes repeat the lines)
        done += n
        chunk_no += 1
    return result(0, 0, None)


def run(
    size: str, seed: int, progress: Any, *, machines: dict[str, Any] | None = None, shrink: bool = True
) -> dict[str, Any]:
    """``machines`` (name -> machine class) replaces the real ones, ``shrink=False`` reports a
    failure as found (tests of the harness itself, which need no minimal example)."""
    machines = all_machines() if machines is None else machines
    figures: dict[str, Any] = {}
    goals: dict[str, list[Any]] = {}
    failures: dict[str, str] = {}
    started = time.monotonic()
    bounded = 0
    for name, cls in machines.items():
        if size == "long":
            examples, steps, bound = LONG_EXAMPLES, LONG_STEPS, LONG_BOUND_S
        else:
            examples, steps, bound = CI.get(name, 20), CI_STEPS, CI_BOUND_S
        t0 = time.monotonic()
        out = run_machine(cls, examples, steps, seed, bound, shrink)
        figures[name + "_examples"] = out["examples"]
        figures[name + "_failures"] = out["failures"]
        for counter, value in out["counters"].items():  # proof the interesting rule ran
            figures[name + "_" + counter] = value
        goals[name + "_failures"] = ["==", 0]
        goals[name + "_examples"] = [">=", 1]
        bounded |= out["bounded"]
        if out["example"]:
            failures[name] = out["example"]
        if progress is not None:
            print(
                "model-based: %s %d examples x <=%d steps, %d failures, %.1f s"
                % (name, out["examples"], steps, out["failures"], time.monotonic() - t0),
                file=progress,
            )
            if out["example"]:
                print("model-based: %s failed:\n%s" % (name, out["example"]), file=progress)
    figures["failures"] = sum(figures[n + "_failures"] for n in machines)
    figures["bounded"] = bounded
    figures["wall_s"] = round(time.monotonic() - started, 1)
    goals["failures"] = ["==", 0]
    if failures:
        figures["shrunk_examples"] = failures
    return {"name": NAME, "size": size, "seed": seed, "figures": figures, "goals": goals}
