"""The figures of a trade run, computed once from its metrics.jsonl: `coin trade` stores them in
summary.json (`performance`) and `coin report` shows exactly those. The ratios are the functions
`coin train` evaluates with (coin_cli.pipelines.metrics), so a replay and an evaluation agree."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from coin_cli.pipelines import metrics as pm

RISK_STATES = ("ACTIVE", "REDUCING", "HALTED")
MAX_RISK_CHANGES = 200   # listed in summary.json and on the page; the total is counted


@dataclass(frozen=True)
class TradeSeries:
    """One value per processed bar, read from metrics.jsonl."""

    time_ms: np.ndarray
    close: np.ndarray
    equity: np.ndarray
    position: np.ndarray
    risk: np.ndarray          # index into RISK_STATES
    reasons: list[tuple[int, str, str]]   # (bar, risk state, reason) where the risk state changed

    @property
    def weight(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            w = np.where(self.equity > 0, self.position * self.close / self.equity, 0.0)
        return w

    @property
    def buy_and_hold(self) -> np.ndarray:
        """The starting equity held in the asset from the first bar's close (no fees)."""
        if self.close.size == 0:
            return self.close
        return self.equity[0] * self.close / self.close[0]


def read_series(path: Path) -> TradeSeries:
    """Bar lines only (drift and other records have no "bar" and are dropped). pyarrow's JSON
    reader: 1M lines in ~2 s where json.loads per line takes ~9 s (benchmarks/bench_report.py)."""
    if not path.is_file() or path.stat().st_size == 0:
        empty = np.zeros(0)
        return TradeSeries(np.zeros(0, dtype=np.int64), empty, empty, empty, np.zeros(0, dtype=np.int8), [])
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj

    schema = pa.schema([("bar", pa.int64()), ("close", pa.float64()), ("equity", pa.float64()),
                        ("position", pa.float64()), ("risk", pa.string()), ("reason", pa.string())])
    table = pj.read_json(path, parse_options=pj.ParseOptions(explicit_schema=schema,
                                                             unexpected_field_behavior="ignore"))
    table = table.filter(pc.is_valid(table["bar"]))
    risk_names = table["risk"].to_numpy(zero_copy_only=False)
    risk = np.zeros(risk_names.size, dtype=np.int8)
    for code, name in enumerate(RISK_STATES[1:], start=1):
        risk[risk_names == name] = code
    times = table["bar"].to_numpy()
    changes = np.flatnonzero(np.diff(risk, prepend=np.int8(-1)))
    reason_col = table["reason"]
    reasons = [(int(times[i]), RISK_STATES[risk[i]], reason_col[int(i)].as_py() or "") for i in changes]
    return TradeSeries(times.astype(np.int64), table["close"].to_numpy(), table["equity"].to_numpy(),
                       table["position"].to_numpy(), risk, reasons)


def iso(ms: int | float | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(int(ms) / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def drawdown(equity: np.ndarray) -> np.ndarray:
    from coin_cli.env.drawdown import drawdown_series  # the one drawdown from the peak

    return drawdown_series(equity)


def monthly_returns(time_ms: np.ndarray, equity: np.ndarray) -> dict[str, float]:
    """Return of each calendar month (UTC): last equity of the month over the last of the one
    before (the first month over the first bar)."""
    if equity.size == 0:
        return {}
    months = time_ms.astype("datetime64[ms]").astype("datetime64[M]")
    change = np.flatnonzero(months[1:] != months[:-1])
    ends = np.concatenate([change, [equity.size - 1]])
    out: dict[str, float] = {}
    prev = equity[0]
    for end in ends:
        out[str(months[end])] = float(equity[end] / prev - 1.0) if prev > 0 else 0.0
        prev = equity[end]
    return out


def trade_figures(series: TradeSeries, summary: dict[str, Any], interval_ms: int) -> dict[str, Any]:
    """The `performance` block of summary.json."""
    equity = series.equity
    ppy = pm.bars_per_year(interval_ms)
    returns = pm.bar_returns(equity)
    n = int(equity.size)
    total = float(equity[-1] / equity[0] - 1.0) if n >= 2 and equity[0] > 0 else 0.0
    try:
        annual = (-1.0 if total <= -1.0 else
                  float((1.0 + total) ** (ppy / returns.size) - 1.0) if returns.size else 0.0)
    except OverflowError:  # a few 1s bars compounded over a year: no meaningful figure
        annual = None
    dd = drawdown(equity)
    trough = int(np.argmax(dd)) if n else 0
    peak = int(np.argmax(equity[: trough + 1])) if n else 0
    recovered = None
    if n and dd[trough] > 0:
        after = np.flatnonzero(equity[trough:] >= equity[peak])
        recovered = iso(series.time_ms[trough + after[0]]) if after.size else None
    mean_equity = float(equity.mean()) if n else 0.0
    counts = np.bincount(series.risk, minlength=len(RISK_STATES)) if n else np.zeros(len(RISK_STATES))
    bh = series.buy_and_hold
    changes = [{"bar": iso(t), "state": s, "reason": r} for i, (t, s, r) in enumerate(series.reasons)
               if i or s != "ACTIVE"]
    return {
        "bars": n,
        "first_bar": iso(series.time_ms[0]) if n else None,
        "last_bar": iso(series.time_ms[-1]) if n else None,
        "total_return": total,
        "annualised_return": annual,
        "sharpe": pm.sharpe(returns, ppy),
        "sortino": pm.sortino(returns, ppy),
        "max_drawdown": float(dd[trough]) if n else 0.0,
        "max_drawdown_peak": iso(series.time_ms[peak]) if n else None,
        "max_drawdown_trough": iso(series.time_ms[trough]) if n else None,
        "max_drawdown_recovered": recovered,
        "trades": int(summary.get("trades") or 0),
        "fees": float(summary.get("fees") or 0.0),
        "turnover": float(summary.get("turnover") or 0.0) / mean_equity if mean_equity > 0 else 0.0,
        "exposure": float(np.mean(np.abs(series.weight))) if n else 0.0,
        "time_in_state": {name: float(counts[i] / n) if n else 0.0 for i, name in enumerate(RISK_STATES)},
        "buy_and_hold_return": float(bh[-1] / bh[0] - 1.0) if n >= 2 else 0.0,
        "monthly_returns": monthly_returns(series.time_ms, equity),
        "risk_changes_total": len(changes),
        "risk_changes": changes[:MAX_RISK_CHANGES],
    }
