"""MetricsLogger: one `metrics.jsonl` line per processed bar (streamed to disk, nothing kept per
bar), `summary.json` at the end, and an optional Prometheus textfile (node_exporter format).

Per-bar latencies go into a fixed 1-µs histogram (0..10 ms, then one overflow bucket), so the
percentiles in the summary cost constant memory however long the run is.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from coin_cli.fsio import atomic_write_json, atomic_write_text

STAGES = ("fill", "mark", "features", "policy", "risk", "state", "metrics")
"""Per-bar stages, in order; their latencies (µs) are the `lat_us` list of each line."""

_HIST_US = 10_000
_LINE = ('{"bar":%d,"close":%.12g,"equity":%.12g,%s,"pnl":%.12g,"drawdown":%.12g,'
         '"risk":"%s","reason":"%s","target":%s,"order":%s,"submit_us":%d,"total_us":%d,'
         '"lat_us":[%s]}\n')
"""One metrics.jsonl line; `lat_us` lists the STAGES latencies in that order (a list, not an
object: the keys would be a third of every line and of its cost)."""
_NUMBER = "%.12g"
_LAT = "%d,%d,%d,%d,%d,%d,%d"
_LAT_CACHE_MAX = 65_536   # distinct lat_us texts kept (a few hundred in practice: small whole µs)
_BALANCES = '"cash":%.12g,"position":%.12g'
_RISK_STATES = ("ACTIVE", "REDUCING", "HALTED")


class LatencyHistogram:
    """Counts of whole microseconds; exact percentiles to 1 µs below 10 ms.

    Adding a sample is one list increment (the metrics logger does it inline, per bar); the
    sample count and the maximum are derived from the counts when asked, except the maximum
    of the overflow bucket, which is tracked."""

    __slots__ = ("counts", "over_max_us")

    def __init__(self) -> None:
        self.counts = [0] * (_HIST_US + 1)
        self.over_max_us = 0   # the largest sample >= 10 ms

    def add(self, us: int) -> None:
        if us < _HIST_US:
            self.counts[us] += 1
        else:
            self.counts[_HIST_US] += 1
            if us > self.over_max_us:
                self.over_max_us = us

    @property
    def n(self) -> int:
        return sum(self.counts)

    @property
    def max_us(self) -> int:
        if self.counts[_HIST_US]:
            return self.over_max_us
        return next((us for us in range(_HIST_US - 1, -1, -1) if self.counts[us]), 0)

    def percentile(self, q: float) -> float | None:
        """The smallest whole µs at or below which a fraction `q` of the samples lie."""
        n = self.n
        if n == 0:
            return None
        rank = max(1, math.ceil(q * n))
        seen = 0
        for us, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                return float(us if us < _HIST_US else self.over_max_us)
        return float(self.max_us)

    def summary(self) -> dict[str, float | int | None]:
        n = self.n
        return {"n": n, "p50_us": self.percentile(0.5), "p99_us": self.percentile(0.99),
                "p999_us": self.percentile(0.999), "max_us": self.max_us if n else None}


class MetricsLogger:
    def __init__(self, path: Path | None, *, labels: dict[str, str], prom_file: Path | None = None,
                 prom_every_s: float = 5.0) -> None:
        self.path = path
        self.labels = labels
        self.prom_file = prom_file
        self.prom_every_s = prom_every_s
        self.submit_latency = LatencyHistogram()   # event received -> order handed to the broker
        self.bar_latency = LatencyHistogram()      # event received -> bar fully processed
        self._bar_counts = self.bar_latency.counts
        self._cash = self._qty = float("nan")   # balances of the last line, and their text
        self._balances = ""
        self._lat_text: dict[tuple[int, ...], str] = {}
        self._fh: TextIO | None = path.open("a", encoding="utf-8", buffering=1 << 20) if path else None
        self._label_text = ",".join(f'{k}="{_prom_escape(v)}"' for k, v in labels.items())
        self._next_prom = 0.0
        self.last: dict[str, Any] = {}

    def bar(self, bar: int, close: float, equity: float, cash: float, qty: float, pnl: float, drawdown: float,
            risk_state: str, reason: str, target: float | None, order: str | None, lat: Sequence[int],
            total_us: int, submit_us: int) -> None:
        """Write one bar: `lat` holds the STAGES latencies in µs (the metrics stage is the previous
        bar's, the one still running now), `total_us` event -> bar processed."""
        if total_us < _HIST_US:
            self._bar_counts[total_us] += 1
        else:
            self.bar_latency.add(total_us)
        if order is not None:
            self.submit_latency.add(submit_us)
        if cash != self._cash or qty != self._qty:  # the balances change only with a fill
            self._cash, self._qty = cash, qty
            self._balances = _BALANCES % (cash, qty)
        fh = self._fh
        if fh is not None:
            key = lat if type(lat) is tuple else tuple(lat)
            lat_text = self._lat_text.get(key)
            if lat_text is None:   # the same few small tuples recur: format each once
                if len(self._lat_text) >= _LAT_CACHE_MAX:
                    self._lat_text.clear()
                lat_text = self._lat_text[key] = _LAT % key
            # One %-format: json.dumps would cost more than the rest of the bar. Floats carry 12
            # significant digits (sub-cent on any balance below 10^9; repr would double the cost).
            fh.write(_LINE % (bar, close, equity, self._balances, pnl, drawdown, risk_state, reason,
                              "null" if target is None else _NUMBER % target,
                              "null" if order is None else '"' + order + '"', submit_us, total_us, lat_text))

    @property
    def lines(self) -> int:
        """Bars logged so far."""
        return self.bar_latency.n

    def maybe_prometheus(self, values: dict[str, Any], *, force: bool = False) -> None:
        """Rewrite the textfile at most every `prom_every_s` seconds (and when forced)."""
        if self.prom_file is None:
            return
        now = time.monotonic()
        if not force and now < self._next_prom:
            return
        self._next_prom = now + self.prom_every_s
        atomic_write_text(self.prom_file, self.prometheus_text(values))

    def prometheus_text(self, values: dict[str, Any]) -> str:
        lab = self._label_text
        out: list[str] = []

        def metric(name: str, kind: str, help_text: str, value: Any, extra: str = "") -> None:
            if value is None:
                return
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")
            labels = lab + ("," + extra if extra else "")
            out.append(f"{name}{{{labels}}} {_prom_number(value)}")

        metric("coin_equity", "gauge", "Account equity in quote currency.", values.get("equity"))
        metric("coin_cash", "gauge", "Cash in quote currency.", values.get("cash"))
        metric("coin_position_qty", "gauge", "Position in base currency.", values.get("qty"))
        metric("coin_position_weight", "gauge", "Position value / equity.", values.get("weight"))
        metric("coin_drawdown_ratio", "gauge", "Drawdown from the equity peak.", values.get("drawdown"))
        metric("coin_max_drawdown_ratio", "gauge", "Largest drawdown from the peak so far.", values.get("max_drawdown"))
        metric("coin_bars_total", "counter", "Bars processed by this run.", values.get("bars"))
        metric("coin_trades_total", "counter", "Fills in the ledger.", values.get("trades"))
        metric("coin_fees_total", "counter", "Fees paid, quote currency.", values.get("fees"))
        metric("coin_alerts_total", "counter", "Alerts raised by this run.", values.get("alerts"))
        metric("coin_last_bar_open_time_seconds", "gauge", "Open time of the last processed bar.",
               None if values.get("last_bar") is None else values["last_bar"] / 1000)
        state = values.get("risk_state")
        if state is not None:
            out.append("# HELP coin_risk_state Risk state (1 for the current one).")
            out.append("# TYPE coin_risk_state gauge")
            for name in _RISK_STATES:
                out.append(f'coin_risk_state{{{lab},state="{name}"}} {1 if name == state else 0}')
        psi = values.get("feature_psi") or {}
        if psi:  # feature drift (monitoring/drift.py), one series per feature
            out.append("# HELP coin_feature_psi Population stability index of a feature vs its training split.")
            out.append("# TYPE coin_feature_psi gauge")
            for name, value in sorted(psi.items()):
                out.append(f'coin_feature_psi{{{lab},feature="{_prom_escape(name)}"}} {_prom_number(value)}')
        p99 = self.bar_latency.percentile(0.99)
        metric("coin_bar_latency_p99_seconds", "gauge", "p99 of the per-bar processing time.",
               None if p99 is None else p99 / 1e6)
        return "\n".join(out) + "\n"

    def record(self, line: dict[str, Any]) -> None:
        """One non-bar line in metrics.jsonl (e.g. {"drift_bar": ..., "psi": {...}})."""
        if self._fh is not None:
            self._fh.write(json.dumps(line, separators=(",", ":")) + "\n")

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def latency_summary(self) -> dict[str, Any]:
        return {"bar": self.bar_latency.summary(), "event_to_submit": self.submit_latency.summary()}

    def write_summary(self, path: Path, summary: dict[str, Any]) -> None:
        atomic_write_json(path, summary)


def _prom_escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _prom_number(value: Any) -> str:
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    return repr(number) if not number.is_integer() or abs(number) >= 1e15 else str(int(number))
