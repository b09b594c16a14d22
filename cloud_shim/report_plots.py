"""The simulation report's plots: one matplotlib Figure per question, from series.json.

Only ``cloud_shim.report.render`` imports this module, so matplotlib and numpy
load when a report is drawn, not when the runner imports the report. Figures
are built with the object API (``Figure``, no pyplot): no global figure list
to leak and no backend switch; ``Figure.savefig`` picks Agg for PNG.

Series come from a runner under test, so every reader here is forgiving:
a missing key, a list of the wrong length, ``None`` or NaN values and
non-numbers all become NaN points or a panel that says "no data" -- never an
exception. Time axes are simulated hours.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MultipleLocator

Floats = np.ndarray[Any, np.dtype[np.float64]]

LINK_STATES = ("online", "degraded", "connecting", "resolving", "offline")
_STATE_COLORS = {
    "online": "#2ca02c",
    "degraded": "#bcbd22",
    "connecting": "#ff7f0e",
    "resolving": "#9467bd",
    "offline": "#d62728",
}
_SIZE = (9.0, 4.0)
_TALL = (9.0, 5.5)
_ZOOM_WINDOW_S = 1800.0  # the storm panel looks this far either side of the peak


def numbers(values: Any) -> Floats:
    """A list of anything as floats; what is not a number becomes NaN."""
    if not isinstance(values, list | tuple):
        return np.array([], dtype=np.float64)
    out = []
    for value in values:
        try:
            out.append(float(value))
        except (TypeError, ValueError):
            out.append(math.nan)
    return np.array(out, dtype=np.float64)


def aligned(t_s: Any, *columns: Any) -> tuple[Floats, list[Floats]]:
    """Time in hours and the columns cut to a common length, rows without a time dropped."""
    t = numbers(t_s)
    cols = [numbers(c) for c in columns]
    n = min([len(t)] + [len(c) for c in cols])
    keep = ~np.isnan(t[:n])
    return t[:n][keep] / 3600.0, [c[:n][keep] for c in cols]


def _has_data(*columns: Floats) -> bool:
    return any(bool(np.any(~np.isnan(c))) for c in columns)


def _figure(size: tuple[float, float] = _SIZE) -> Figure:
    return Figure(figsize=size, layout="constrained")


def no_data(title: str, why: str = "no data") -> Figure:
    """A placeholder panel, so the page never points at a missing image."""
    fig = _figure((9.0, 2.0))
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.text(0.5, 0.5, why, ha="center", va="center", fontsize=14, color="0.4", transform=ax.transAxes)
    ax.set_axis_off()
    return fig


def mark_groups(marks: Any, span_h: float) -> list[tuple[float, str]]:
    """(time in hours, label) of the marks, those closer than 2% of the span sharing one label."""
    points = []
    for mark in marks if isinstance(marks, list) else []:
        t_h = numbers([mark.get("t_s")])[0] / 3600.0 if isinstance(mark, dict) else math.nan
        if not math.isnan(t_h):
            points.append((t_h, str(mark.get("label", ""))))
    points.sort(key=lambda p: p[0])
    groups: list[list[tuple[float, str]]] = []
    for point in points:
        if groups and point[0] - groups[-1][0][0] < 0.02 * span_h:
            groups[-1].append(point)
        else:
            groups.append([point])
    out = []
    for group in groups:
        label = group[0][1][:36]
        out.append((group[0][0], label + (" (+%d)" % (len(group) - 1) if len(group) > 1 else "")))
    return out


def draw_marks(ax: Axes, marks: Any, labels: bool = True) -> None:
    """The scenario's marks as dashed vertical lines, labelled along the top (the page lists them all)."""
    lo, hi = ax.get_xlim()
    for t_h, label in mark_groups(marks, hi - lo):
        ax.axvline(t_h, color="0.35", linestyle="--", linewidth=0.8, zorder=1)
        if labels:
            ax.text(t_h, 0.98, " " + label, transform=ax.get_xaxis_transform(), rotation=90,
                    ha="right", va="top", fontsize=7, color="0.25", clip_on=True)  # fmt: skip
    ax.set_xlim(lo, hi)


def _time_axis(ax: Axes) -> None:
    ax.set_xlabel("simulated time (h)")
    ax.grid(True, alpha=0.3)


def _legend(ax: Axes) -> None:
    """Outside on the right: inside, it hides data or a mark's label wherever it goes."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)


def _seconds_label(seconds: float) -> str:
    if seconds < 120:
        return "%.3g s" % seconds
    return "%.3g min" % (seconds / 60) if seconds < 7200 else "%.3g h" % (seconds / 3600)


def _zoom_tick_s(width_s: float) -> float:
    """A round tick step giving about five to ten ticks over the zoom window."""
    for step in (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800):
        if width_s / step <= 8:
            return float(step)
    return 3600.0


def _clock(hours: float, _pos: Any = None) -> str:
    seconds = round(hours * 3600)
    return "%d:%02d:%02d" % (seconds // 3600, seconds // 60 % 60, seconds % 60)


def room(series: dict[str, Any]) -> Figure:
    """Room temperature and setpoint of one thermostat, heater-on as a shaded band."""
    data = series.get("room")
    title = "Room temperature vs setpoint"
    if not isinstance(data, dict) or data.get("device", "") is None:
        return no_data(title, "no data (no thermostat in the fleet)")
    t, (temp, setpoint, heater) = aligned(
        series.get("t_s"), data.get("temp_c"), data.get("setpoint_c"), data.get("heater_on")
    )
    if not len(t) or not _has_data(temp, setpoint):
        return no_data(title)
    fig = _figure()
    ax = fig.add_subplot()
    ax.set_title("%s (%s)" % (title, data.get("device", "?")))
    on = np.nan_to_num(heater) > 0.5
    if bool(on.any()):
        ax.fill_between(
            t,
            0,
            1,
            where=on,
            step="post",
            transform=ax.get_xaxis_transform(),
            color="tab:red",
            alpha=0.12,
            linewidth=0,
            label="heater on",
        )
    ax.plot(t, temp, color="tab:blue", linewidth=1.2, label="room temperature")
    ax.step(t, setpoint, where="post", color="tab:orange", linewidth=1.2, label="setpoint")
    ax.set_ylabel("°C")
    _time_axis(ax)
    draw_marks(ax, series.get("marks"))
    _legend(ax)
    return fig


def outbox(series: dict[str, Any]) -> Figure:
    """Records waiting in outboxes: the fleet's total (top) and the fullest device (bottom)."""
    data = series.get("outbox_depth")
    title = "Outbox depth"
    if not isinstance(data, dict):
        return no_data(title)
    t, (total, biggest) = aligned(series.get("t_s"), data.get("total"), data.get("max"))
    if not len(t) or not _has_data(total, biggest):
        return no_data(title)
    fig = _figure(_TALL)
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.set_title(title)
    top.fill_between(t, np.nan_to_num(total), color="tab:blue", alpha=0.3, linewidth=0)
    top.plot(t, total, color="tab:blue", linewidth=1.0)
    top.set_ylabel("records, all devices")
    bottom.plot(t, biggest, color="tab:purple", linewidth=1.0)
    bottom.set_ylabel("records, fullest device")
    for ax in (top, bottom):
        ax.set_ylim(bottom=0)
        _time_axis(ax)
        draw_marks(ax, series.get("marks"), labels=ax is top)
    top.set_xlabel("")
    return fig


def link_states(series: dict[str, Any]) -> Figure:
    """How many devices are in each link state, stacked."""
    data = series.get("link_states")
    title = "Link state of the fleet"
    if not isinstance(data, dict) or not data:
        return no_data(title)
    names = [s for s in LINK_STATES if s in data] + sorted(str(s) for s in data if s not in LINK_STATES)
    t, columns = aligned(series.get("t_s"), *[data[name] for name in names])
    if not len(t) or not _has_data(*columns):
        return no_data(title)
    fig = _figure()
    ax = fig.add_subplot()
    ax.set_title(title)
    colors = [_STATE_COLORS.get(name, "0.6") for name in names]
    ax.stackplot(t, *[np.nan_to_num(c) for c in columns], labels=names, colors=colors, alpha=0.85, step="post")
    ax.set_ylabel("devices")
    ax.set_ylim(bottom=0)
    _time_axis(ax)
    draw_marks(ax, series.get("marks"))
    _legend(ax)
    return fig


def connects(series: dict[str, Any], cap_per_s: Any = None, after_s: Any = None) -> Figure:
    """Connection attempts per simulated second against the herd cap; a zoom on the storm below.

    The zoom centres on the busiest second after ``after_s`` (the end of the last
    fault: the reconnect storm) when there were connects then, else the busiest overall.
    """
    data = series.get("connects")
    title = "Reconnects per second"
    if not isinstance(data, dict):
        return no_data(title)
    t_s, (per_s,) = aligned(data.get("t_s"), data.get("per_s"))
    t_s = t_s * 3600.0  # aligned() gives hours; the zoom window is in seconds
    per_s = np.nan_to_num(per_s)
    if not len(t_s) or not bool((per_s > 0).any()):
        return no_data(title, "no data (no connection attempts)")
    cap = numbers([data.get("cap_per_s", cap_per_s)])[0]
    if math.isnan(cap):
        cap = numbers([cap_per_s])[0]
    fig = _figure(_TALL)
    whole, zoom = fig.subplots(2, 1)
    whole.set_title(title)
    after = numbers([after_s])[0]
    storm = per_s * (t_s >= after) if not math.isnan(after) and bool((per_s * (t_s >= after) > 0).any()) else per_s
    peak = int(np.argmax(storm))
    near = np.abs(t_s - t_s[peak]) <= _ZOOM_WINDOW_S
    busy = t_s[near & (per_s > 0)]
    pad = max(60.0, 0.1 * float(busy[-1] - busy[0]))
    lo, hi = float(busy[0]) - pad, float(busy[-1]) + pad
    drawn = per_s > 0  # empty seconds draw nothing: skip them, a day has 86,400
    for ax in (whole, zoom):
        ax.vlines(t_s[drawn] / 3600.0, 0, per_s[drawn], color="tab:blue", linewidth=1.0, label="connects/s")
        if not math.isnan(cap):
            ax.axhline(cap, color="tab:red", linestyle="-", linewidth=1.2, label="herd cap %g/s" % cap)
        ax.set_ylabel("connects / s")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
    _time_axis(whole)
    t_end = max(float(np.nanmax(numbers(series.get("t_s")), initial=0.0)), float(t_s[-1]))
    whole.set_xlim(0, t_end / 3600.0)
    draw_marks(whole, series.get("marks"))
    _legend(whole)
    zoom.set_xlim(lo / 3600.0, hi / 3600.0)
    zoom.xaxis.set_major_locator(MultipleLocator(_zoom_tick_s(hi - lo) / 3600.0))
    zoom.xaxis.set_major_formatter(FuncFormatter(_clock))
    zoom.set_xlabel("simulated time (h:mm:ss), around the peak of %d/s at %s" % (per_s[peak], _clock(t_s[peak] / 3600)))
    return fig


def latency_quantile(edges: Sequence[float], counts: Sequence[float], q: float) -> float:
    """The upper edge of the bin where the q-quantile falls (NaN when there is nothing counted)."""
    total = float(sum(counts))
    if total <= 0:
        return math.nan
    running = 0.0
    for i, count in enumerate(counts):
        running += count
        if running >= q * total:
            return float(edges[i + 1])
    return float(edges[len(counts)])


def histogram(series: dict[str, Any]) -> tuple[Floats, Floats] | None:
    """(edges, counts) of the latency histogram, or None when it is unusable."""
    data = series.get("latency_s")
    if not isinstance(data, dict):
        return None
    edges, counts = numbers(data.get("bins")), np.nan_to_num(numbers(data.get("counts")))
    n = min(len(counts), len(edges) - 1)
    if n <= 0:
        return None
    edges, counts = edges[: n + 1], counts[:n]
    if bool(np.isnan(edges).any()) or not bool((np.diff(edges) > 0).all()) or counts.sum() <= 0:
        return None
    return edges, counts


def latency(series: dict[str, Any]) -> Figure:
    """How long records took from creation to delivery; log x when the bins span decades."""
    title = "Delivery latency (creation -> delivery)"
    hist = histogram(series)
    if hist is None:
        return no_data(title, "no data (no delivered records)")
    edges, counts = hist
    fig = _figure()
    ax = fig.add_subplot()
    ax.set_title(title)
    positive = edges[edges > 0]
    log = len(positive) >= 2 and positive[-1] / positive[0] >= 100 and edges[1] > 0
    if log and edges[0] <= 0:
        edges = edges.copy()
        edges[0] = edges[1] / 10.0  # a log axis has no 0: the first bin starts a decade lower
    ax.stairs(counts, edges, fill=True, color="tab:blue", alpha=0.7)
    if log:
        ax.set_xscale("log")
    for q, style in ((0.5, ":"), (0.99, "--")):
        x = latency_quantile(list(edges), list(counts), q)
        ax.axvline(x, color="0.2", linestyle=style, linewidth=1.0, label="p%g <= %s" % (q * 100, _seconds_label(x)))
    ax.set_xlabel("latency (s)%s" % (", log scale" if log else ""))
    ax.set_ylabel("records")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    return fig
