"""Gaps in a candle series: where bars are missing, how many, and the largest hole."""

from __future__ import annotations

from typing import Any

import numpy as np

from coin_cli.data.schema import interval_ms, is_calendar, month_index, ms_to_iso

MAX_LISTED_GAPS = 1000
"""The manifest lists at most this many gaps (the counts always cover all of them)."""


def missing_bars(open_time: np.ndarray, interval: str) -> tuple[np.ndarray, np.ndarray]:
    """(index of the bar before each gap, bars missing in it) for a sorted, unique series."""
    times = np.asarray(open_time, dtype="int64")
    if len(times) < 2:
        return np.empty(0, dtype="int64"), np.empty(0, dtype="int64")
    # floor division: an off-grid bar is reported by validate, not counted twice here
    steps = np.diff(month_index(times)) if is_calendar(interval) else np.diff(times) // interval_ms(interval)
    where = np.flatnonzero(steps > 1)
    return where, steps[where] - 1


def gap_summary(open_time: np.ndarray, interval: str, max_listed: int = MAX_LISTED_GAPS) -> dict[str, Any]:
    """Counts of gap events and missing bars, the largest gap, and the first `max_listed` gaps."""
    times = np.asarray(open_time, dtype="int64")
    where, missing = missing_bars(times, interval)
    listed = [_gap(times, int(i), int(n)) for i, n in zip(where[:max_listed], missing[:max_listed], strict=True)]
    largest = None
    if len(where):
        k = int(np.argmax(missing))
        largest = _gap(times, int(where[k]), int(missing[k]))
    return {
        "events": len(where),
        "missing_bars": int(missing.sum()),
        "largest": largest,
        "list": listed,
        "list_truncated": len(where) > max_listed,
    }


def _gap(times: np.ndarray, i: int, missing: int) -> dict[str, Any]:
    return {
        "after": ms_to_iso(int(times[i])),
        "before": ms_to_iso(int(times[i + 1])),
        "missing": missing,
        "after_ms": int(times[i]),
        "before_ms": int(times[i + 1]),
    }
