"""A small hand-written SVG line chart: stacked panels sharing a UTC time axis, each with
labelled axes, grid lines and a legend. No plotting library (keeps the probe light)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from xml.sax.saxutils import escape

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")
MAX_POINTS = 1500  # per line; more is invisible at this width and only bloats the file


@dataclass
class Panel:
    y_label: str
    lines: dict[str, Sequence[float]] = field(default_factory=dict)  # legend label -> values
    dashed: set[str] = field(default_factory=set)


def line_chart(title: str, times_ms: Sequence[int], panels: Sequence[Panel], *, width: int = 960,
               panel_height: int = 260) -> str:
    """SVG text: one panel per entry of `panels`, x = time (UTC)."""
    left, right, top, gap, bottom = 90, 44, 48, 56, 56
    height = top + len(panels) * panel_height + (len(panels) - 1) * gap + bottom
    plot_w = width - left - right
    n = len(times_ms)
    keep = _downsample(n)
    t0 = float(times_ms[0]) if n else 0.0
    t1 = float(times_ms[-1]) if n > 1 else t0 + 1.0
    if t1 <= t0:
        t1 = t0 + 1.0

    def x_of(t: float) -> float:
        return left + (t - t0) / (t1 - t0) * plot_w

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2:.0f}" y="24" text-anchor="middle" font-size="16" font-weight="bold">'
           f'{escape(title)}</text>']
    x_ticks = _time_ticks(t0, t1)
    for k, panel in enumerate(panels):
        y_top = top + k * (panel_height + gap)
        values = [v for series in panel.lines.values() for v in series if _finite(v)]
        lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
        if hi - lo < 1e-12 * max(1.0, abs(hi)):
            lo, hi = lo - 1.0, hi + 1.0
        pad = 0.05 * (hi - lo)
        lo, hi = lo - pad, hi + pad

        def y_of(v: float, lo: float = lo, hi: float = hi, y_top: float = y_top) -> float:
            return y_top + (hi - v) / (hi - lo) * panel_height

        out.append(f'<rect x="{left}" y="{y_top}" width="{plot_w}" height="{panel_height}" fill="none" '
                   'stroke="#444"/>')
        for tick in _nice_ticks(lo, hi):
            y = y_of(tick)
            out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#ddd"/>')
            out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(tick)}</text>')
        for t, label in x_ticks:
            x = x_of(t)
            out.append(f'<line x1="{x:.1f}" y1="{y_top}" x2="{x:.1f}" y2="{y_top + panel_height}" stroke="#eee"/>')
            out.append(f'<text x="{x:.1f}" y="{y_top + panel_height + 16}" text-anchor="middle">{label}</text>')
        y_mid = y_top + panel_height / 2
        out.append(f'<text x="18" y="{y_mid:.0f}" text-anchor="middle" transform="rotate(-90 18 {y_mid:.0f})">'
                   f'{escape(panel.y_label)}</text>')
        legend_w = 24 + 36 + 7 * max((len(label) for label in panel.lines), default=0)
        out.append(f'<rect x="{left + 4}" y="{y_top + 3}" width="{legend_w * len(panel.lines)}" height="20" '
                   'fill="white" fill-opacity="0.85"/>')
        for i, (label, series) in enumerate(panel.lines.items()):
            colour = COLOURS[i % len(COLOURS)]
            points = " ".join(f"{x_of(float(times_ms[j])):.1f},{y_of(float(series[j])):.1f}"
                              for j in keep if j < len(series) and _finite(series[j]))
            dash = ' stroke-dasharray="6 4"' if label in panel.dashed else ""
            out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5"{dash} points="{points}"/>')
            lx, ly = left + 10 + legend_w * i, y_top + 16
            out.append(f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 24}" y2="{ly - 4}" stroke="{colour}" '
                       f'stroke-width="2"{dash}/>')
            out.append(f'<text x="{lx + 30}" y="{ly}">{escape(label)}</text>')
    out.append(f'<text x="{left + plot_w / 2:.0f}" y="{height - 14}" text-anchor="middle">time (UTC)</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _finite(v: float) -> bool:
    return v is not None and math.isfinite(v)


def _downsample(n: int) -> list[int]:
    if n <= MAX_POINTS:
        return list(range(n))
    step = n / MAX_POINTS
    idx = sorted({int(i * step) for i in range(MAX_POINTS)} | {n - 1})
    return idx


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    ticks, v = [], first
    while v <= hi + 1e-9 * step:
        ticks.append(round(v, 12))
        v += step
    return ticks


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 1:
        return f"{v:.2f}".rstrip("0").rstrip(".")
    return f"{v:.3g}"


def _time_ticks(t0: float, t1: float, count: int = 6) -> list[tuple[float, str]]:
    span_days = (t1 - t0) / 86_400_000
    fmt = "%Y-%m-%d" if span_days > 3 else "%m-%d %H:%M"
    return [(t, datetime.fromtimestamp(t / 1000, UTC).strftime(fmt))
            for t in (t0 + (t1 - t0) * i / (count - 1) for i in range(count))]
