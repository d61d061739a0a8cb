"""Every chart `coin` draws: matplotlib with the Agg backend, written as SVG (or PNG by suffix).
matplotlib is imported inside these functions only, so light commands never load it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from coin_cli.report.decimate import minmax
from coin_cli.report.figures import TradeSeries, drawdown

COLUMNS = 1600          # pixel columns a curve is decimated to (the figure is ~1300 px wide)
_COLOURS = {"agent": "#1f77b4", "voltarget": "#2ca02c", "buyhold": "#7f7f7f", "flat": "#bcbd22"}
_STATE_SHADE = {1: ("#ffbf00", "REDUCING"), 2: ("#d62728", "HALTED")}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.grid": True, "grid.alpha": 0.3,
                         "axes.spines.top": False, "axes.spines.right": False, "svg.hashsalt": "coin"})
    return plt


def _dates(ms: np.ndarray) -> np.ndarray:
    return np.asarray(ms, dtype="int64").astype("datetime64[ms]")


def _save(fig: Any, path: Path) -> Path:
    import io

    from coin_cli.fsio import atomic_write_bytes
    buf = io.BytesIO()
    fmt = "png" if path.suffix.lower() == ".png" else "svg"
    fig.savefig(buf, format=fmt, dpi=110, bbox_inches="tight", metadata={"Date": None} if fmt == "svg" else None)
    import matplotlib.pyplot as plt
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _legend(ax: Any) -> None:
    """The legend right of the axes, off the curves; none when nothing is labelled."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)


def _shade_states(axes: Sequence[Any], dates: np.ndarray, risk: np.ndarray) -> None:
    """Shade REDUCING and HALTED spans on every panel (one span per contiguous run)."""
    if risk.size == 0:
        return
    change = np.flatnonzero(np.diff(risk)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [risk.size]])
    labelled: set[int] = set()
    for s, e in zip(starts, ends, strict=True):
        state = int(risk[s])
        if state not in _STATE_SHADE:
            continue
        colour, name = _STATE_SHADE[state]
        for k, ax in enumerate(axes):
            ax.axvspan(dates[s], dates[min(e, risk.size - 1)], color=colour, alpha=0.15, lw=0,
                       label=name if k == 0 and state not in labelled else None)
        labelled.add(state)


def trade_chart(series: TradeSeries, path: Path, title: str) -> Path:
    """Equity and buy-and-hold, the drawdown, the weight held with buy/sell markers; REDUCING and
    HALTED periods shaded. Curves are min/max-decimated to COLUMNS pixel columns."""
    plt = _pyplot()
    fig, (ax_eq, ax_dd, ax_w) = plt.subplots(3, 1, figsize=(12, 7.5), sharex=True,
                                             gridspec_kw={"height_ratios": [3, 1.2, 1.2]})
    dates = _dates(series.time_ms)
    equity, hold = series.equity, series.buy_and_hold
    if equity.size:
        x, y = minmax(dates, equity, COLUMNS)
        ax_eq.plot(x, y, color=_COLOURS["agent"], lw=1.2, label=f"strategy (final {equity[-1]:,.0f})", gid="equity")
        x, y = minmax(dates, hold, COLUMNS)
        ax_eq.plot(x, y, color=_COLOURS["buyhold"], lw=1, ls="--",
                   label=f"buy and hold (final {hold[-1]:,.0f})", gid="buyhold")
        dd = drawdown(equity)
        x, y = minmax(dates, -dd * 100, COLUMNS)
        ax_dd.fill_between(x, y, 0, color="#d62728", alpha=0.35, lw=0, gid="drawdown")
        ax_dd.plot(x, y, color="#d62728", lw=0.6)
        weight = series.weight
        x, y = minmax(dates, weight, COLUMNS)
        ax_w.plot(x, y, color="#444444", lw=0.8, drawstyle="steps-post", gid="weight")
        _trade_markers(ax_w, dates, series.position, weight)
        _shade_states((ax_eq, ax_dd, ax_w), dates, series.risk)
    ax_eq.set_ylabel("equity (quote)")
    ax_dd.set_ylabel("drawdown %")
    ax_w.set_ylabel("weight")
    ax_w.set_xlabel("time (UTC)")
    ax_eq.set_title(title, loc="left")
    _legend(ax_eq)
    _legend(ax_w)
    fig.autofmt_xdate()
    return _save(fig, path)


def _trade_markers(ax: Any, dates: np.ndarray, position: np.ndarray, weight: np.ndarray,
                   limit: int = 4000) -> None:
    """Buy (▲) and sell (▼) where the position changed; thinned to `limit` each on long runs."""
    change = np.diff(position, prepend=position[:1])
    for mask, marker, colour, name in ((change > 0, "^", "#2ca02c", "buy"), (change < 0, "v", "#d62728", "sell")):
        idx = np.flatnonzero(mask)
        if idx.size > limit:
            idx = idx[np.linspace(0, idx.size - 1, limit).astype(int)]
        ax.scatter(dates[idx], weight[idx], marker=marker, s=14, color=colour, zorder=3,
                   label=f"{name} ({int(mask.sum())})", gid=name)


def equity_lines_chart(path: Path, title: str, times_ms: Sequence[int], lines: Mapping[str, Sequence[float]],
                       boundaries_ms: Sequence[int] = (), ylabel: str = "equity (quote)",
                       second: tuple[str, Mapping[str, Sequence[float]]] | None = None) -> Path:
    """Several strategies over the same bars (agent and baselines, or VolTarget and buy-and-hold),
    final values in the legend placed right of the axes, fold boundaries as vertical lines, an
    optional second panel (e.g. cumulative reward) and a drawdown panel of the first line."""
    plt = _pyplot()
    panels = 3 if second else 2
    ratios = [3, 1.6, 1.2][:panels] if second else [3, 1.2]
    fig, axes = plt.subplots(panels, 1, figsize=(12, 2.4 * panels + 1.5), sharex=True,
                             gridspec_kw={"height_ratios": ratios})
    dates = _dates(np.asarray(times_ms))
    ax = axes[0]
    for name, values in lines.items():
        v = np.asarray(values, dtype=np.float64)[: dates.size]
        if v.size == 0:
            continue
        x, y = minmax(dates[: v.size], v, COLUMNS)
        ax.plot(x, y, lw=1.4 if name == "agent" else 1, color=_COLOURS.get(name.split(" ")[0].lower()),
                ls="--" if name.lower() in ("flat", "buyhold", "buy and hold") else "-",
                label=f"{name} (final {v[-1]:,.2f})", gid=f"line-{name}")
    ax.set_ylabel(ylabel)
    ax.set_title(title, loc="left")
    _legend(ax)
    rest = list(axes[1:])
    if second:
        ax2 = rest.pop(0)
        label, extra = second
        for name, values in extra.items():
            v = np.asarray(values, dtype=np.float64)[: dates.size]
            if v.size:
                x, y = minmax(dates[: v.size], v, COLUMNS)
                ax2.plot(x, y, lw=1, color=_COLOURS.get(name.split(" ")[0].lower()), label=name,
                         gid=f"second-{name}")
        ax2.set_ylabel(label)
    first = next((np.asarray(v, dtype=np.float64) for v in lines.values() if len(v)), None)
    ax_dd = rest[0]
    if first is not None:
        x, y = minmax(dates[: first.size], -drawdown(first[: dates.size]) * 100, COLUMNS)
        ax_dd.fill_between(x, y, 0, color="#d62728", alpha=0.35, lw=0, gid="drawdown")
    ax_dd.set_ylabel(f"drawdown % ({next(iter(lines), '')})")
    axes[-1].set_xlabel("time (UTC)")
    for b in boundaries_ms:
        for a in axes:
            a.axvline(np.datetime64(int(b), "ms"), color="#555555", lw=0.8, ls=":")
    fig.autofmt_xdate()
    return _save(fig, path)


def curve_chart(path: Path, curve: Sequence[Mapping[str, Any]], title: str) -> Path:
    """The training curve: validation reward at each evaluation (one line per fold)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(12, 3.2))
    folds: dict[Any, list[tuple[float, float]]] = {}
    for row in curve:
        try:
            folds.setdefault(row.get("fold", 0), []).append((float(row["timesteps"]), float(row["val_reward"])))
        except (KeyError, TypeError, ValueError):
            continue
    for fold, points in folds.items():
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, marker="o", ms=3, lw=1, label=f"fold {fold} (last {ys[-1]:.4f})")
    if not folds:
        ax.text(0.5, 0.5, "no validation evaluation recorded (fewer steps than train.eval_freq)",
                ha="center", va="center", transform=ax.transAxes, color="#666666")
    ax.set_xlabel("timesteps")
    ax.set_ylabel("validation reward")
    ax.set_title(title, loc="left")
    _legend(ax)
    return _save(fig, path)
