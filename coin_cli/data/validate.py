"""Candle checks: structure (errors) and market facts (warnings), vectorised for millions of rows.

Errors: open times out of order, duplicates, off-grid times, close_time that does not match the
interval, OHLC inconsistency, NaN or negative values, a still-open last candle.
Warnings: gaps and zero-volume bars (real markets have both).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from coin_cli.data.gaps import gap_summary
from coin_cli.data.schema import (
    OPTIONAL_FLOAT_COLUMNS,
    PRICE_COLUMNS,
    TRADES_UNKNOWN,
    close_times,
    grid_anchor_ms,
    interval_ms,
    is_calendar,
    month_index,
    month_start_ms,
    ms_to_iso,
    normalize_interval,
)

if TYPE_CHECKING:
    import pandas as pd

ERROR, WARNING, OK = "error", "warning", "ok"


@dataclass(frozen=True)
class Check:
    """One check's outcome; `first` is the row index of the first offending row."""

    name: str
    status: str
    count: int
    detail: str = ""
    first: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.name, "status": self.status, "count": self.count, "detail": self.detail}


RowLabel = Callable[[int], str]


def check_candles(frame: pd.DataFrame, interval: str, now_ms: int | None = None,
                  label: RowLabel | None = None, checks: Sequence[str] | None = None) -> list[Check]:
    """Run the checks (all, or the names in `checks`) on a candle table in its row order."""
    interval = normalize_interval(interval)
    label = label or (lambda i: f"row {i + 1}")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    t = frame["open_time"].to_numpy(dtype="int64")
    cols = {c: frame[c].to_numpy() for c in frame.columns}

    def at(i: int) -> str:
        return f"{label(i)} ({ms_to_iso(int(t[i]))})"

    runners: dict[str, Callable[[], Check]] = {
        "order": lambda: _order(t, at),
        "duplicates": lambda: _duplicates(t, at),
        "grid": lambda: _grid(t, interval, at),
        "close_time": lambda: _close_time(t, cols.get("close_time"), interval, at),
        "nan": lambda: _nan(cols, at),
        "negative": lambda: _negative(cols, at),
        "ohlc": lambda: _ohlc(cols, at),
        "open_candle": lambda: _open_candle(t, cols.get("close_time"), interval, now, at),
        "gaps": lambda: _gaps(t, interval),
        "zero_volume": lambda: _zero_volume(cols["volume"], at),
    }
    wanted = list(runners) if checks is None else list(checks)
    return [runners[name]() for name in wanted]


def validate_frame(frame: pd.DataFrame, interval: str, now_ms: int | None = None) -> dict[str, Any]:
    """All checks on a stored table, as the summary `coin data validate` shows."""
    checks = check_candles(frame, interval, now_ms, label=lambda i: f"row {i + 1}")
    t = frame["open_time"].to_numpy(dtype="int64")
    sorted_unique = t if len(t) < 2 or bool(np.all(t[1:] > t[:-1])) else np.unique(t)
    gaps = gap_summary(sorted_unique, interval)
    errors = sum(1 for c in checks if c.status == ERROR)
    warnings = sum(1 for c in checks if c.status == WARNING)
    largest = gaps["largest"] or {}
    return {
        "rows": len(frame),
        "first": ms_to_iso(int(t[0])) if len(t) else None,
        "last": ms_to_iso(int(t[-1])) if len(t) else None,
        "status": "errors" if errors else ("warnings" if warnings else "ok"),
        "errors": errors,
        "warnings": warnings,
        "gap_events": gaps["events"],
        "missing_bars": gaps["missing_bars"],
        "largest_gap": largest.get("missing"),
        "largest_gap_after": largest.get("after"),
        "zero_volume": next(c.count for c in checks if c.name == "zero volume"),
        "checks": [c.as_dict() for c in checks],
        "gaps": gaps,
    }


# ---- the checks ----------------------------------------------------------------------------------

def _first(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if len(hits) else None


def _order(t: np.ndarray, at: Callable[[int], str]) -> Check:
    bad = np.zeros(len(t), dtype=bool)
    if len(t) > 1:
        bad[1:] = t[1:] < t[:-1]
    i = _first(bad)
    detail = "" if i is None else f"{at(i)} comes after {ms_to_iso(int(t[i - 1]))}"
    return Check("open_time order", ERROR if i is not None else OK, int(bad.sum()), detail, i)


def _duplicates(t: np.ndarray, at: Callable[[int], str]) -> Check:
    if len(t) > 1 and bool(np.all(t[1:] > t[:-1])):
        return Check("duplicates", OK, 0)
    order = np.argsort(t, kind="stable")
    sorted_t = t[order]
    dup_sorted = np.zeros(len(t), dtype=bool)
    dup_sorted[1:] = sorted_t[1:] == sorted_t[:-1]
    dup = np.zeros(len(t), dtype=bool)
    dup[order] = dup_sorted
    i = _first(dup)
    detail = "" if i is None else f"{at(i)}: open_time repeated"
    return Check("duplicates", ERROR if i is not None else OK, int(dup.sum()), detail, i)


def _grid(t: np.ndarray, interval: str, at: Callable[[int], str]) -> Check:
    if is_calendar(interval):
        bad = month_start_ms(month_index(t)) != t
    elif interval == "3d":
        # Binance does not document the 3-day anchor: check alignment relative to the first bar
        bad = (t - (t[0] if len(t) else 0)) % interval_ms(interval) != 0
    else:
        bad = (t - grid_anchor_ms(interval)) % interval_ms(interval) != 0
    i = _first(bad)
    detail = "" if i is None else f"{at(i)}: not on the {interval} grid"
    return Check("off-grid timestamps", ERROR if i is not None else OK, int(bad.sum()), detail, i)


def _close_time(t: np.ndarray, close: np.ndarray | None, interval: str, at: Callable[[int], str]) -> Check:
    if close is None:
        return Check("close_time", OK, 0, "not given (derived from the interval)")
    expected = close_times(t, interval)
    bad = close.astype("int64") != expected
    i = _first(bad)
    detail = "" if i is None else f"{at(i)}: close_time {int(close[i])}, expected {int(expected[i])} for {interval}"
    return Check("close_time", ERROR if i is not None else OK, int(bad.sum()), detail, i)


def _nan(cols: dict[str, np.ndarray], at: Callable[[int], str]) -> Check:
    bad = np.zeros(len(cols["open_time"]), dtype=bool)
    for name in (*PRICE_COLUMNS, "volume"):
        bad |= ~np.isfinite(cols[name])
    i = _first(bad)
    detail = "" if i is None else f"{at(i)}: {_culprit(cols, i, lambda a: ~np.isfinite(a))} is not a finite number"
    return Check("NaN values", ERROR if i is not None else OK, int(bad.sum()), detail, i)


def _negative(cols: dict[str, np.ndarray], at: Callable[[int], str]) -> Check:
    bad = np.zeros(len(cols["open_time"]), dtype=bool)
    for name in PRICE_COLUMNS:
        bad |= cols[name] <= 0
    for name in ("volume", *OPTIONAL_FLOAT_COLUMNS):
        if name in cols:
            bad |= cols[name] < 0  # NaN compares False: an optional column may be unknown
    if "trades" in cols:
        bad |= cols["trades"] < TRADES_UNKNOWN
    i = _first(bad)
    detail = ""
    if i is not None:
        name = next(n for n in (*PRICE_COLUMNS, "volume", *OPTIONAL_FLOAT_COLUMNS, "trades")
                    if n in cols and (cols[n][i] <= 0 if n in PRICE_COLUMNS else
                                      cols[n][i] < (TRADES_UNKNOWN if n == "trades" else 0)))
        detail = f"{at(i)}: {name} = {cols[name][i].item()!r}"
    return Check("negative values", ERROR if i is not None else OK, int(bad.sum()), detail, i)


def _ohlc(cols: dict[str, np.ndarray], at: Callable[[int], str]) -> Check:
    o, h, lo, c = (cols[n] for n in PRICE_COLUMNS)
    with np.errstate(invalid="ignore"):
        bad = (lo > np.minimum(o, c)) | (h < np.maximum(o, c)) | (h < lo)
    i = _first(bad)
    detail = ""
    if i is not None:
        o_, h_, l_, c_ = (float(x[i]) for x in (o, h, lo, c))
        detail = f"{at(i)}: open {o_!r} high {h_!r} low {l_!r} close {c_!r} (need low <= open, close <= high)"
    return Check("OHLC consistency", ERROR if i is not None else OK, int(bad.sum()), detail, i)


def _open_candle(t: np.ndarray, close: np.ndarray | None, interval: str, now: int,
                 at: Callable[[int], str]) -> Check:
    if not len(t):
        return Check("still-open last candle", OK, 0)
    closes = close if close is not None else close_times(t, interval)
    i = int(np.argmax(t))
    if int(closes[i]) >= now:
        return Check("still-open last candle", ERROR, 1,
                     f"{at(i)}: closes at {ms_to_iso(int(closes[i]))}, after now; its values are not final", i)
    return Check("still-open last candle", OK, 0)


def _gaps(t: np.ndarray, interval: str) -> Check:
    sorted_unique = t if len(t) < 2 or bool(np.all(t[1:] > t[:-1])) else np.unique(t)
    gaps = gap_summary(sorted_unique, interval, max_listed=0)
    if not gaps["events"]:
        return Check("gaps", OK, 0)
    big = gaps["largest"]
    detail = (f"{gaps['missing_bars']} missing bars; largest {big['missing']} after {big['after']} "
              f"(next {big['before']})")
    return Check("gaps", WARNING, int(gaps["events"]), detail)


def _zero_volume(volume: np.ndarray, at: Callable[[int], str]) -> Check:
    bad = volume == 0
    i = _first(bad)
    detail = "" if i is None else f"first at {at(i)}"
    return Check("zero volume", WARNING if i is not None else OK, int(bad.sum()), detail, i)


def _culprit(cols: dict[str, np.ndarray], i: int, test: Callable[[np.ndarray], np.ndarray]) -> str:
    for name in (*PRICE_COLUMNS, "volume"):
        if bool(test(cols[name][i : i + 1])[0]):
            return name
    return "a value"
