"""equity_test.svg: the agent and the baselines on one hand-written SVG line chart
(no plotting library: the file must stay small, readable and dependency-free)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape

import numpy as np

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#7f7f7f", "#9467bd", "#ff7f0e")
WIDTH, HEIGHT = 900, 420
LEFT, RIGHT, TOP, BOTTOM = 80, 170, 40, 50
MAX_POINTS = 1500


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    step = (high - low) / (count - 1)
    return [low + i * step for i in range(count)]


def _time_label(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000.0, UTC).strftime("%Y-%m-%d")


def equity_svg(series: Mapping[str, Sequence[float]], times_ms: Sequence[float] | None = None, *,
               title: str = "Equity on the test split", y_label: str = "equity (quote)") -> str:
    """One polyline per series (same length), x = bar (or open time when given), y = equity."""
    names = list(series)
    arrays = {name: np.asarray(series[name], dtype=np.float64) for name in names}
    n = max((a.size for a in arrays.values()), default=0)
    finite = np.concatenate([a[np.isfinite(a)] for a in arrays.values()]) if arrays else np.zeros(0)
    y_low, y_high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if y_high - y_low < 1e-12:
        y_low, y_high = y_low - 1.0, y_high + 1.0
    pad = (y_high - y_low) * 0.05
    y_low, y_high = y_low - pad, y_high + pad
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(i: float) -> float:
        return LEFT + (i / max(n - 1, 1)) * plot_w

    def py(v: float) -> float:
        return TOP + (1.0 - (v - y_low) / (y_high - y_low)) * plot_h

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
             f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
             f'<text x="{WIDTH / 2:.0f}" y="22" text-anchor="middle" font-size="15">{escape(title)}</text>']
    for value in _ticks(y_low, y_high):
        y = py(value)
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{value:,.0f}</text>')
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        i = frac * max(n - 1, 0)
        label = _time_label(times_ms[round(i)]) if times_ms is not None and n else f"{round(i)}"
        parts.append(f'<text x="{px(i):.1f}" y="{TOP + plot_h + 18}" text-anchor="middle">{escape(label)}</text>')
    parts.append(f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>')
    x_label = "time (UTC)" if times_ms is not None else "bar"
    parts.append(f'<text x="{LEFT + plot_w / 2:.0f}" y="{HEIGHT - 10}" text-anchor="middle">{x_label}</text>')
    parts.append(f'<text x="16" y="{TOP + plot_h / 2:.0f}" text-anchor="middle" '
                 f'transform="rotate(-90 16 {TOP + plot_h / 2:.0f})">{escape(y_label)}</text>')
    for k, name in enumerate(names):
        values = arrays[name]
        stride = max(1, -(-values.size // MAX_POINTS))  # keep the file small on long splits
        index = np.unique(np.r_[np.arange(0, values.size, stride), values.size - 1]) if values.size else []
        points = " ".join(f"{px(i):.1f},{py(values[i]):.1f}" for i in index if np.isfinite(values[i]))
        color = COLORS[k % len(COLORS)]
        width = 2.2 if k == 0 else 1.4
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="{width}" points="{points}"/>')
        ly = TOP + 14 + 18 * k
        parts.append(f'<line x1="{LEFT + plot_w + 12}" y1="{ly - 4}" x2="{LEFT + plot_w + 32}" y2="{ly - 4}" '
                     f'stroke="{color}" stroke-width="{width}"/>')
        parts.append(f'<text x="{LEFT + plot_w + 38}" y="{ly}">{escape(name)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
