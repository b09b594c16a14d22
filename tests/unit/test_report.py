"""The simulation report (cloud_shim/report*.py): plots, page and terminal table from synthetic runs."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cloud_shim import report_plots
from cloud_shim.report import PLOTS, main, render, summary_table
from cloud_shim.report_text import metric_rows, verdict

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
INVARIANTS = ("no_control_gap", "no_loss", "no_duplicate", "shadow_converged")


def make_metrics(**overrides: Any) -> dict[str, Any]:
    metrics: dict[str, Any] = {
        "scenario": "us-east-1-2025",
        "seed": 7,
        "devices": 12,
        "speed": 600,
        "sim_s": 7200.0,
        "wall_s": 14.2,
        "records_created": 4321,
        "records_delivered": 4300,
        "lost": 0,
        "duplicated": 0,
        "compacted": 21,
        "control_gaps": 0,
        "max_tick_latency_ms": 8.5,
        "shadow_converged_s": 95.0,
        "peak_connects_per_s": 9,
        "herd_cap_per_s": 10,
        "resync_s": 240.0,
        "commands": {"issued": 5, "ok": 4, "expired": 1},
        "invariants": dict.fromkeys(INVARIANTS, True),
        "ok": True,
    }
    metrics.update(overrides)
    return metrics


def make_series(n: int = 40) -> dict[str, Any]:
    """Two simulated hours at 3-minute samples: an outage in the middle, a reconnect storm after it."""
    t = [i * 180 for i in range(n)]
    down = [n // 4 <= i < n // 2 for i in range(n)]
    storm_t = list(range(3700, 3760))
    return {
        "sample_s": 180,
        "t_s": t,
        "room": {
            "device": "thermostat-0001",
            "temp_c": [19.0 + 0.05 * (i % 20) for i in range(n)],
            "setpoint_c": [20.0 if i < n // 2 else 21.0 for i in range(n)],
            "heater_on": [i % 20 < 10 for i in range(n)],
        },
        "outbox_depth": {
            "total": [30 * i * d for i, d in enumerate(down)],
            "max": [3 * i * d for i, d in enumerate(down)],
        },
        "link_states": {
            "online": [0 if d else 12 for d in down],
            "degraded": [0] * n,
            "connecting": [4 if d else 0 for d in down],
            "resolving": [8 if d else 0 for d in down],
            "offline": [0] * n,
        },
        "connects": {"bin_s": 1, "t_s": storm_t, "per_s": [(i * 7) % 10 for i in range(len(storm_t))], "cap_per_s": 10},
        "latency_s": {"bins": [0, 0.01, 0.1, 1, 10, 100, 1000, 10000], "counts": [5, 400, 30, 2, 0, 10, 90]},
        "marks": [{"t_s": 1800, "label": "primary DNS <empty>"}, {"t_s": 3600, "label": "recovery"}],
    }


def write_report(root: Path, metrics: dict[str, Any], series: dict[str, Any] | None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "metrics.json").write_text(json.dumps(metrics))
    if series is not None:
        (root / "series.json").write_text(json.dumps(series))
    return root


def banner(page: str) -> str:
    found = re.search(r'<div class="banner (pass|fail)">(.*?)</div>', page, re.S)
    assert found, "no banner on the page"
    return found.group(0)


def assert_every_plot_is_a_png(root: Path, page: str) -> None:
    for name, _title, _how in PLOTS:
        assert (root / name).read_bytes()[:8] == PNG_MAGIC, name
        assert 'src="%s"' % name in page


def test_render_writes_every_plot_and_a_page_naming_every_metric(tmp_path: Path) -> None:
    metrics = make_metrics()
    index = render(write_report(tmp_path, metrics, make_series()))
    page = index.read_text()
    assert index == tmp_path / "index.html"
    assert_every_plot_is_a_png(tmp_path, page)
    for key in set(metrics) - {"invariants"}:  # a section shows its keys, the invariants their own table
        assert ">%s<" % key in page or ">%s." % key in page, key
    for key in ("commands.issued", "commands.ok", "commands.expired", *INVARIANTS):
        assert ">%s<" % key in page, key
    assert "us-east-1-2025" in page.split("</title>")[0] and "seed 7" in page and "12 devices" in page
    assert "PASS" in banner(page) and 'class="banner pass"' in page
    assert "primary DNS &lt;empty&gt;" in page and "<empty>" not in page  # mark labels are escaped
    assert page.count("<figcaption>") == len(PLOTS)
    assert "peak was 9/s against a cap of 10/s" in page


def test_fail_banner_names_each_broken_invariant_with_its_figure(tmp_path: Path) -> None:
    invariants = dict.fromkeys(INVARIANTS, True) | {"no_loss": False, "no_control_gap": False}
    metrics = make_metrics(lost=3, control_gaps=2, invariants=invariants, ok=False)
    page = render(write_report(tmp_path, metrics, make_series())).read_text()
    top = banner(page)
    assert 'class="banner fail"' in top and "FAIL" in top
    assert "no_loss" in top and "lost = 3" in top
    assert "no_control_gap" in top and "control_gaps = 2" in top
    assert "no_duplicate" not in top and "shadow_converged" not in top
    assert '<td class="FAIL">FAIL</td>' in page


def test_verdict_needs_an_ok_or_an_evaluated_invariant() -> None:
    assert verdict(make_metrics()) == (True, [])
    assert verdict(make_metrics(ok=False)) == (False, [])
    assert verdict(make_metrics(invariants={"no_loss": None, "no_duplicate": True}, ok=None)) == (True, [])
    assert verdict(make_metrics(ok=True, invariants={"no_loss": False})) == (False, ["no_loss"])
    assert verdict({}) == (False, [])


@pytest.mark.parametrize(
    "series",
    [
        None,  # no series.json at all
        {},
        {"t_s": [], "room": {}, "outbox_depth": {}, "link_states": {}, "connects": {}, "latency_s": {}, "marks": []},
        {"t_s": [0, 60], "room": None, "outbox_depth": "?", "link_states": [], "connects": 3, "latency_s": None},
        {
            "t_s": [0, 60, None, 180, float("nan")],
            "room": {"temp_c": [None, float("nan")], "setpoint_c": ["x"], "heater_on": None},
            "outbox_depth": {"total": [None] * 5, "max": []},
            "link_states": {"online": [None, None]},
            "connects": {"t_s": [1, 2], "per_s": [0, 0], "cap_per_s": None},
            "latency_s": {"bins": [1, 0.5, 2], "counts": [1, 1]},
            "marks": [{"t_s": None, "label": "no time"}, "junk", {"label": "missing t"}],
        },
    ],
    ids=["no-file", "empty", "empty-lists", "wrong-types", "nan-and-none"],
)
def test_missing_or_broken_series_give_no_data_panels_not_a_crash(tmp_path: Path, series: Any) -> None:
    page = render(write_report(tmp_path, make_metrics(), series)).read_text()
    assert_every_plot_is_a_png(tmp_path, page)
    assert "PASS" in banner(page)


def no_data_text(fig: Any) -> str:
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    return " ".join(texts)


@pytest.mark.parametrize("draw", ["room", "outbox", "link_states", "connects", "latency"])
def test_each_plot_says_no_data_for_an_empty_series(draw: str) -> None:
    fig = getattr(report_plots, draw)({"t_s": []})
    assert no_data_text(fig).startswith("no data")


def test_gaps_in_a_series_are_drawn_around_not_refused() -> None:
    series = make_series(10)
    series["room"]["temp_c"][3] = None
    series["room"]["temp_c"][4] = float("nan")
    series["room"]["setpoint_c"] = series["room"]["setpoint_c"][:7]  # shorter column: cut to the shortest
    fig = report_plots.room(series)
    texts = no_data_text(fig)
    assert "no data" not in texts
    assert "recovery" in texts  # marks are labelled vertical lines
    line = fig.axes[0].get_lines()[0]
    assert len(line.get_xdata()) == 7 and math.isnan(line.get_ydata()[4])  # type: ignore[arg-type]


def test_latency_axis_goes_log_only_when_bins_span_decades() -> None:
    wide = report_plots.latency(make_series())
    assert wide.axes[0].get_xscale() == "log"
    narrow = report_plots.latency({"latency_s": {"bins": [0, 0.5, 1, 1.5, 2], "counts": [1, 5, 2, 0]}})
    assert narrow.axes[0].get_xscale() == "linear"


def test_latency_quantiles_are_bin_upper_edges() -> None:
    edges, counts = [0, 1, 10, 100], [50, 49, 1]
    assert report_plots.latency_quantile(edges, counts, 0.5) == 1
    assert report_plots.latency_quantile(edges, counts, 0.99) == 10
    assert report_plots.latency_quantile(edges, counts, 1.0) == 100
    assert math.isnan(report_plots.latency_quantile(edges, [0, 0, 0], 0.5))


def test_summary_table_is_aligned_and_names_each_invariant_result() -> None:
    invariants = dict.fromkeys(INVARIANTS, True) | {"no_duplicate": False}
    table = summary_table(make_metrics(duplicated=4, invariants=invariants, ok=False))
    lines = table.splitlines()
    value_column = {len(line) - len(line[line.index("  ") :].lstrip()) for line in lines}
    assert len(value_column) == 1, table  # every value starts in the same column
    assert "us-east-1-2025" in lines[0] and "seed 7" in lines[0] and "12 devices" in lines[0]
    assert "lost 0  duplicated 4" in table
    assert "created 4,321  delivered 4,300  compacted 21" in table
    assert "peak 9/s  herd cap 10/s" in table
    assert "issued 5  expired 1  ok 4" in table
    results = {line.split()[1]: line.split()[2] for line in lines if line.startswith("invariant")}
    assert results == {"no_control_gap": "PASS", "no_loss": "PASS", "no_duplicate": "FAIL", "shadow_converged": "PASS"}
    assert lines[-1].split() == ["RESULT", "FAIL", "(no_duplicate)"]
    assert summary_table(make_metrics()).splitlines()[-1].split() == ["RESULT", "PASS"]


def test_summary_table_survives_missing_and_nan_metrics() -> None:
    table = summary_table({"scenario": "x", "lost": float("nan"), "commands": None, "invariants": "?"})
    assert "lost n/a" in table and "RESULT" in table.splitlines()[-1] and "FAIL" in table.splitlines()[-1]


def test_metric_rows_flatten_sections_and_keep_unknown_metrics() -> None:
    keys = [key for key, _ in metric_rows(make_metrics(extra_figure=1.5))]
    assert keys[:3] == ["scenario", "seed", "devices"]
    assert "commands.issued" in keys and "extra_figure" in keys and "invariants" not in keys


def test_main_rerenders_a_directory_and_reports_a_bad_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(write_report(tmp_path / "good", make_metrics(), make_series(8)))]) == 0
    out = capsys.readouterr().out
    assert "RESULT" in out and str(tmp_path / "good" / "index.html") in out
    (tmp_path / "bad").mkdir()
    assert main([str(tmp_path / "bad")]) == 1
    assert "metrics.json" in capsys.readouterr().err
    assert main([]) == 2


def test_importing_the_report_does_not_load_matplotlib() -> None:
    code = "import sys, cloud_shim.report; sys.exit('matplotlib' in sys.modules or 'numpy' in sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_summary_table_shows_the_runners_extra_figures_and_bounds() -> None:
    metrics = make_metrics(
        records_pending=6,
        redelivered=2,
        order_violations=0,
        slow_ticks=4,
        peak_connects_after_outage_per_s=7,
        bounds_s={"shadow_converged": 600.0, "resync": 900.0},
        resync_s=None,
        commands={"issued": 3, "ok": 0, "rejected": 3, "timeout": 0},
        invariants=dict.fromkeys(INVARIANTS, True) | {"in_order": True, "resynced": False},
        ok=False,
    )
    table = summary_table(metrics)
    assert "compacted 21  pending 6" in table and "redelivered 2  out of order 0" in table
    assert "slow (> 50 ms) 4" in table and "after the outage 7/s" in table
    assert "converged 95.0 s after the last fault (bound 10.0 min)" in table
    assert "n/a after the last fault (bound 15.0 min)" in table
    assert "issued 3  rejected 3" in table and "timeout" not in table  # zero outcomes only on the page
    assert table.splitlines()[-1].split() == ["RESULT", "FAIL", "(resynced)"]


def test_close_marks_share_one_label() -> None:
    marks = [{"t_s": 3600, "label": "b"}, {"t_s": 0, "label": "a"}, {"t_s": 3610, "label": "c"}, {"t_s": None}]
    assert report_plots.mark_groups(marks, span_h=2.0) == [(0.0, "a"), (1.0, "b (+1)")]
    assert report_plots.mark_groups("junk", span_h=2.0) == []


def test_connects_zoom_follows_the_storm_after_the_last_fault() -> None:
    t = list(range(0, 7200, 10))
    per_s = [0] * len(t)
    per_s[0], per_s[500] = 9, 4  # boot at t=0 is busier than the storm at 5000 s
    series = {"connects": {"t_s": t, "per_s": per_s, "cap_per_s": 5}}
    storm = report_plots.connects(series, after_s=3600).axes[1]
    lo, hi = storm.get_xlim()
    assert lo < 5000 / 3600 < hi and lo > 0
    boot = report_plots.connects(series).axes[1]
    assert boot.get_xlim()[0] < 0 < boot.get_xlim()[1]
    assert any(line.get_label() == "herd cap 5/s" for line in storm.get_lines())
