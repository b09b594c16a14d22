"""The outage simulation's report: ``render(report_dir)`` and ``summary_table(metrics)``.

``brickproof sim --report DIR`` writes ``metrics.json`` and ``series.json``
(formats: the "Report directory" section of the simulator contract, mirrored in
``cloud_shim/report_text.py`` (what each metric means, the terminal table) and
``cloud_shim/report_plots.py`` (the series)). ``render`` reads them back
and writes one PNG per plot plus a self-contained ``index.html`` next to them:
a PASS/FAIL banner naming the broken invariants, every metric in a table, the
plots with a sentence each on how to read them. ``summary_table`` is the same
verdict for the terminal at the end of a run.

matplotlib is imported inside ``render`` only, so importing this module (the
runner does at start) stays cheap. A series the runner could not fill in is
drawn as a "no data" panel; only a missing or unreadable ``metrics.json`` is
an error. Re-render a directory with ``python -m cloud_shim.report DIR``.
"""

from __future__ import annotations

import html
import json
import sys
from pathlib import Path
from typing import Any

from cloud_shim.report_text import (
    INVARIANT_HELP,
    METRIC_HELP,
    broken_phrase,
    fmt_duration,
    fmt_value,
    is_nan,
    metric_rows,
    no_verdict,
    section,
    state_word,
    summary_table,
    verdict,
)

__all__ = ["PLOTS", "load", "page", "render", "summary_table"]

# (file, title, how to read it); the runner's series.json feeds each.
PLOTS = (
    ("room.png", "Room temperature vs setpoint",
     "One thermostat's room through the run: the blue line should follow the orange setpoint whether the "
     "cloud is reachable or not; red bands are when the heater was on, dashed lines the scenario's marks."),
    ("outbox.png", "Outbox depth",
     "Records waiting to be sent, for the whole fleet (top) and the fullest single device (bottom): they "
     "pile up while the cloud is unreachable and should drain back to near zero after recovery."),
    ("link_states.png", "Link state of the fleet",
     "How many devices were in each link state, stacked so the top is the fleet size: green is online; "
     "during an outage the fleet moves to resolving/connecting/offline and should return to green."),
    ("connects.png", "Reconnects per second",
     "Connection attempts per simulated second (blue) against the herd cap (red line); the lower panel "
     "zooms on the busiest moment: the storm after recovery should stay under the cap."),
    ("latency.png", "Delivery latency",
     "How long records took from creation on the device to delivery in the cloud, all records: most are "
     "fast; the tail is what waited out the outage in an outbox (p50/p99 marked)."),
)  # fmt: skip


def load(report_dir: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metrics, series) from a report directory; a missing series.json is an empty one."""
    root = Path(report_dir)
    metrics = _read_json(root / "metrics.json", required=True)
    series = _read_json(root / "series.json", required=False)
    return metrics, series


def _read_json(path: Path, required: bool) -> dict[str, Any]:
    if not path.exists() and not required:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError("report: cannot read %s: %s" % (path, exc)) from None
    if not isinstance(data, dict):
        raise ValueError("report: %s: expected a JSON object" % path)
    return data


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


_CSS = """
body{font-family:system-ui,sans-serif;max-width:62rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{margin-bottom:.2rem} .meta{color:#555;margin-top:0}
.banner{padding:.8rem 1rem;border-radius:6px;font-weight:600;margin:1rem 0}
.pass{background:#e3f4e1;border:1px solid #5a9e52} .fail{background:#fbe3e1;border:1px solid #c0392b}
.banner ul{margin:.4rem 0 0;font-weight:400}
table{border-collapse:collapse;margin:.5rem 0 1.5rem} td,th{padding:.25rem .7rem;border-bottom:1px solid #ddd;
text-align:left;vertical-align:top} td.v{font-variant-numeric:tabular-nums;text-align:right}
td.PASS{color:#2e7d32;font-weight:600} td.FAIL{color:#c0392b;font-weight:600}
figure{margin:0 0 2rem} img{max-width:100%} figcaption{color:#444;max-width:50rem}
"""


def _meaning(key: str) -> str:
    parent, _, sub = key.partition(".")
    return "%s: %s" % (METRIC_HELP.get(parent, parent), sub.replace("_", " ")) if sub else METRIC_HELP.get(key, "")


def page(metrics: dict[str, Any], series: dict[str, Any], details: dict[str, str] | None = None) -> str:
    """The index.html text; ``details`` adds a measured sentence under a plot (by file name)."""
    details = details or {}
    passed, broken = verdict(metrics)
    title = "Brickproof outage simulation: %s" % metrics.get("scenario", "?")
    meta = tuple(_esc(fmt_value(k, metrics.get(k))) for k in ("seed", "devices", "sim_s", "wall_s", "speed"))
    out = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>%s</title><style>%s</style></head><body>" % (_esc(title), _CSS),
        "<h1>%s</h1>" % _esc(title),
        '<p class="meta">seed %s &middot; %s devices &middot; %s simulated in %s wall (speed %s)</p>' % meta,
    ]
    if passed:
        out.append('<div class="banner pass">PASS: every invariant held.</div>')
    else:
        items = [broken_phrase(metrics, name) for name in broken] or [no_verdict(metrics)]
        out.append(
            '<div class="banner fail">FAIL: %s<ul>%s</ul></div>'
            % (_esc(", ".join(broken) or "not ok"), "".join("<li>%s</li>" % _esc(i) for i in items))
        )
    invariants = section(metrics, "invariants")
    out.append("<h2>Invariants</h2><table><tr><th>invariant</th><th>result</th><th>checks that</th></tr>")
    for name in sorted(invariants):
        state = state_word(invariants[name])
        what = INVARIANT_HELP.get(name, ("", ""))[0]
        out.append('<tr><td>%s</td><td class="%s">%s</td><td>%s</td></tr>' % (_esc(name), state, state, _esc(what)))
    out.append("</table><h2>Metrics</h2><table><tr><th>metric</th><th>value</th><th>meaning</th></tr>")
    for key, value in metric_rows(metrics):
        cells = (_esc(key), _esc(fmt_value(key, value)), _esc(_meaning(key)))
        out.append('<tr><td>%s</td><td class="v">%s</td><td>%s</td></tr>' % cells)
    out.append("</table><h2>Plots</h2>")
    for name, plot_title, how in PLOTS:
        caption = _esc(how + (" " + details[name] if details.get(name) else ""))
        out.append('<figure id="%s"><h3>%s</h3>' % (_esc(name[:-4]), _esc(plot_title)))
        out.append('<img src="%s" alt="%s"><figcaption>%s</figcaption></figure>' % (name, _esc(plot_title), caption))
    marks = [m for m in series.get("marks") or [] if isinstance(m, dict)]
    if marks:
        out.append("<h2>Marks</h2><table><tr><th>simulated time</th><th>label</th></tr>")
        for mark in marks:
            t = mark.get("t_s")
            when = "%.2f h" % (t / 3600) if isinstance(t, int | float) and not is_nan(t) else "n/a"
            out.append("<tr><td>%s</td><td>%s</td></tr>" % (_esc(when), _esc(mark.get("label", ""))))
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def render(report_dir: str | Path) -> Path:
    """Draw the plots and write index.html in ``report_dir``; returns the page's path."""
    from cloud_shim import report_plots as plots

    root = Path(report_dir)
    metrics, series = load(root)
    figures = {
        "room.png": plots.room(series),
        "outbox.png": plots.outbox(series),
        "link_states.png": plots.link_states(series),
        "connects.png": plots.connects(series, metrics.get("herd_cap_per_s"), metrics.get("fault_end_s")),
        "latency.png": plots.latency(series),
    }
    for name, figure in figures.items():
        figure.savefig(root / name, dpi=100, format="png")
    details = {}
    hist = plots.histogram(series)
    if hist is not None:
        edges, counts = list(hist[0]), list(hist[1])
        p50, p99 = (plots.latency_quantile(edges, counts, q) for q in (0.5, 0.99))
        details["latency.png"] = "Here half the records arrived within %s, 99%% within %s." % (
            fmt_duration(p50),
            fmt_duration(p99),
        )
    peak, cap = metrics.get("peak_connects_per_s"), metrics.get("herd_cap_per_s")
    if isinstance(peak, int | float) and isinstance(cap, int | float):
        after = metrics.get("peak_connects_after_outage_per_s")
        storm = " (%g/s after the last fault)" % after if isinstance(after, int | float) else ""
        details["connects.png"] = "Here the peak was %g/s%s against a cap of %g/s." % (peak, storm, cap)
    index = root / "index.html"
    index.write_text(page(metrics, series, details), encoding="utf-8")
    return index


def main(argv: list[str] | None = None) -> int:
    """``python -m cloud_shim.report DIR``: re-render a report directory."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m cloud_shim.report REPORT_DIR\n")
        return 2
    try:
        index = render(args[0])
    except ValueError as exc:
        sys.stderr.write("%s\n" % exc)
        return 1
    metrics, _ = load(args[0])
    sys.stdout.write("%s\n\nreport: %s\n" % (summary_table(metrics), index))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
