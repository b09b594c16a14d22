"""The bed board boots and runs offline on a real MicroPython VM, deciding as CPython does."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.portable.test_micropython import REPO_ROOT, _binary

pytestmark = pytest.mark.micropython

ARGS = ["device/offline.py", "boards/host_bed_sim.json", "--app", "bed", "--for", "7200", "--status-every", "3600"]


def _summary(stdout: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.startswith("summary ")]
    assert len(lines) == 1, stdout[-2000:]
    result: dict[str, Any] = json.loads(lines[0][len("summary ") :])
    return result


def test_bed_runs_two_night_hours_under_micropython_like_cpython() -> None:
    mp = subprocess.run(
        [_binary("micropython"), *ARGS], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    cp = subprocess.run(
        [sys.executable, *ARGS], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert mp.returncode == 0 and cp.returncode == 0, mp.stdout[-1000:] + mp.stderr[-1000:] + cp.stdout[-1000:]
    mp_summary, cp_summary = _summary(mp.stdout), _summary(cp.stdout)
    assert mp_summary["task_crashes"] == 0
    assert mp_summary["bed"]["ticks"] == 7201
    assert mp_summary["bed"]["health"] == "ok"
    for key in ("ticks", "requests_limited", "requests_rejected", "store_errors"):
        assert mp_summary["bed"][key] == cp_summary["bed"][key], key
    assert mp_summary["outbox_records"] == cp_summary["outbox_records"]
    assert mp_summary["store_counters"] == cp_summary["store_counters"]
