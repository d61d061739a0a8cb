"""The candle table (DESIGN.md §3): column names and types, intervals and their time grid.

No pandas at import time: `coin --help` imports nothing heavy, and this module is cheap.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from coin_cli.errors import UsageError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

CANDLE_COLUMNS: list[str] = [
    "open_time", "open", "high", "low", "close", "volume",
    "close_time", "quote_volume", "trades", "taker_buy_base", "taker_buy_quote",
]
"""Every stored candle table has exactly these columns, in this order."""

INT_COLUMNS: tuple[str, ...] = ("open_time", "close_time", "trades")
FLOAT_COLUMNS: tuple[str, ...] = tuple(c for c in CANDLE_COLUMNS if c not in INT_COLUMNS)
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
REQUIRED_COLUMNS: tuple[str, ...] = ("open_time", "open", "high", "low", "close", "volume")
"""What every source must provide; the rest is optional on import (CSV with only OHLCV)."""
OPTIONAL_FLOAT_COLUMNS: tuple[str, ...] = ("quote_volume", "taker_buy_base", "taker_buy_quote")

TRADES_UNKNOWN = -1
"""`trades` of a source that has no trade count (int64 has no NaN; optional floats use NaN)."""

_MINUTE = 60_000
_INTERVAL_MS: dict[str, int] = {
    "1s": 1_000,
    "1m": _MINUTE, "3m": 3 * _MINUTE, "5m": 5 * _MINUTE, "15m": 15 * _MINUTE, "30m": 30 * _MINUTE,
    "1h": 60 * _MINUTE, "2h": 120 * _MINUTE, "4h": 240 * _MINUTE, "6h": 360 * _MINUTE,
    "8h": 480 * _MINUTE, "12h": 720 * _MINUTE,
    "1d": 1_440 * _MINUTE, "3d": 3 * 1_440 * _MINUTE, "1w": 7 * 1_440 * _MINUTE,
    "1M": 30 * 1_440 * _MINUTE,  # nominal only: month candles follow the calendar (see grid helpers)
}
INTERVALS: tuple[str, ...] = tuple(_INTERVAL_MS)
"""The standard Binance kline intervals (case-sensitive: `1m` is a minute, `1M` a month)."""

_ALIASES = {"1mo": "1M"}  # the bulk archive spells the month interval `1mo`
_WEEK_ANCHOR_MS = 4 * 1_440 * _MINUTE  # 1970-01-01 was a Thursday; Binance weeks open on Monday


def normalize_interval(interval: str) -> str:
    """The canonical spelling of `interval`; UsageError when it is not a Binance interval."""
    name = _ALIASES.get(interval, interval)
    if name not in _INTERVAL_MS:
        raise UsageError(f"interval {interval!r} is not a Binance kline interval (one of {' '.join(INTERVALS)})")
    return name


def interval_ms(interval: str) -> int:
    """Length of one candle in milliseconds (nominal 30 days for `1M`)."""
    return _INTERVAL_MS[normalize_interval(interval)]


def is_calendar(interval: str) -> bool:
    """True for the month interval, whose candles are not a fixed number of milliseconds."""
    return normalize_interval(interval) == "1M"


def grid_anchor_ms(interval: str) -> int:
    """Open times of `interval` satisfy (t - anchor) % interval_ms == 0 (not for `1M`)."""
    return _WEEK_ANCHOR_MS if normalize_interval(interval) == "1w" else 0


def month_index(open_time_ms: np.ndarray) -> np.ndarray:
    """Months since 1970-01 for each ms timestamp (vectorised)."""
    import numpy as np

    months = np.asarray(open_time_ms, dtype="int64").astype("datetime64[ms]").astype("datetime64[M]")
    return months.astype("int64")


def month_start_ms(index: np.ndarray) -> np.ndarray:
    """Inverse of `month_index`: ms timestamp of the first instant of each month."""
    import numpy as np

    return np.asarray(index, dtype="int64").astype("datetime64[M]").astype("datetime64[ms]").astype("int64")


def open_times(start_ms: int, rows: int, interval: str) -> np.ndarray:
    """`rows` consecutive open times from `start_ms` (aligned down to the grid)."""
    import numpy as np

    if is_calendar(interval):
        first = int(month_index(np.array([start_ms]))[0])
        return month_start_ms(np.arange(first, first + rows, dtype="int64"))
    step = interval_ms(interval)
    anchor = grid_anchor_ms(interval)
    first = start_ms - (start_ms - anchor) % step
    return first + step * np.arange(rows, dtype="int64")


def close_times(open_time_ms: np.ndarray, interval: str) -> np.ndarray:
    """Binance close time of each candle: the last millisecond before the next open."""
    import numpy as np

    opens = np.asarray(open_time_ms, dtype="int64")
    if is_calendar(interval):
        return month_start_ms(month_index(opens) + 1) - 1
    return opens + interval_ms(interval) - 1


def empty_frame() -> pd.DataFrame:
    """A zero-row candle table with the store dtypes."""
    import numpy as np
    import pandas as pd

    return pd.DataFrame({c: np.empty(0, dtype="int64" if c in INT_COLUMNS else "float64") for c in CANDLE_COLUMNS})


def conform(frame: pd.DataFrame, interval: str) -> pd.DataFrame:
    """Return `frame` with exactly CANDLE_COLUMNS and store dtypes.

    Missing optional columns are filled: close_time from the interval, floats with NaN,
    trades with TRADES_UNKNOWN. Missing required columns are a DataError.
    """
    import numpy as np
    import pandas as pd

    from coin_cli.errors import DataError

    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"candle table lacks required column(s): {', '.join(missing)}")
    if list(frame.columns) == CANDLE_COLUMNS and all(
            frame[c].dtype == ("int64" if c in INT_COLUMNS else "float64") for c in CANDLE_COLUMNS):
        return frame  # already conforming: no copy (a million rows is 88 MB)
    opens = frame["open_time"].to_numpy(dtype="int64")
    out: dict[str, Any] = {}
    for col in CANDLE_COLUMNS:
        if col in frame.columns:
            out[col] = frame[col].to_numpy(dtype="int64" if col in INT_COLUMNS else "float64")
        elif col == "close_time":
            out[col] = close_times(opens, interval)
        elif col == "trades":
            out[col] = np.full(len(frame), TRADES_UNKNOWN, dtype="int64")
        else:
            out[col] = np.full(len(frame), np.nan, dtype="float64")
    return pd.DataFrame(out, copy=False)


def ms_to_iso(ms: int | None) -> str | None:
    """`2024-01-01T00:00:00Z` for a ms timestamp (None stays None)."""
    if ms is None:
        return None
    moment = datetime.fromtimestamp(int(ms) / 1000, tz=UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{int(ms) % 1000:03d}Z" if int(ms) % 1000 else "Z")


def parse_time_ms(text: str, what: str = "time") -> int:
    """A time given on the command line: ms since the epoch, or an ISO date/datetime (UTC)."""
    value = text.strip()
    if value.isdigit():
        number = int(value)
        return number // 1000 if number >= 10**15 else number
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{what} {text!r}: expected YYYY-MM-DD, an ISO datetime or ms since the epoch") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
