"""MetricsLogger: one `metrics.jsonl` line per processed bar (streamed to disk, nothing kept per
bar), `summary.json` at the end, and an optional Prometheus textfile (node_exporter format).

Per-bar latencies go into a fixed 1-µs histogram (0..10 ms, then one overflow bucket), so the
percentiles in the summary cost constant memory however long the run is.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from coin_cli.fsio import atomic_write_json

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
        self._registry: Any = None     # prometheus_client's, made with the first textfile
        self._snapshot: _Snapshot | None = None
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
        """Rewrite the textfile at most every `prom_every_s` seconds (and when forced); the
        library's write_to_textfile writes a temporary file and renames it (atomic)."""
        if self.prom_file is None:
            return
        now = time.monotonic()
        if not force and now < self._next_prom:
            return
        self._next_prom = now + self.prom_every_s
        from prometheus_client import write_to_textfile

        write_to_textfile(str(self.prom_file), self._prometheus_registry(values))

    def prometheus_text(self, values: dict[str, Any]) -> str:
        """The textfile's content for `values` (the runtime's snapshot, runtime/service.py)."""
        from prometheus_client import generate_latest

        return generate_latest(self._prometheus_registry(values)).decode()

    def _prometheus_registry(self, values: dict[str, Any]) -> Any:
        from prometheus_client import CollectorRegistry

        if self._registry is None:
            self._registry = CollectorRegistry(auto_describe=False)
            self._snapshot = _Snapshot(self.labels, self.bar_latency)
            self._registry.register(self._snapshot)
        self._snapshot.values = values
        return self._registry

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


GAUGES = (  # (values key, metric name, help); a new gauge is one more row
    ("equity", "coin_equity", "Account equity in quote currency."),
    ("cash", "coin_cash", "Cash in quote currency."),
    ("qty", "coin_position_qty", "Position in base currency."),
    ("weight", "coin_position_weight", "Position value / equity."),
    ("drawdown", "coin_drawdown_ratio", "Drawdown from the equity peak."),
    ("max_drawdown", "coin_max_drawdown_ratio", "Largest drawdown from the peak so far."),
)
COUNTERS = (  # totals of this run, exposed as `<name>_total`
    ("bars", "coin_bars", "Bars processed by this run."),
    ("trades", "coin_trades", "Fills in the ledger."),
    ("fees", "coin_fees", "Fees paid, quote currency."),
    ("alerts", "coin_alerts", "Alerts raised by this run."),
)


class _Snapshot:
    """A prometheus_client collector of the runtime's latest values (a custom collector, the
    library's way to expose numbers another part of the program keeps: the runtime counts bars,
    fills and fees, so a Counter.inc() here would keep them a second time). A key that is None or
    absent is left out of the file."""

    def __init__(self, labels: dict[str, str], bar_latency: LatencyHistogram) -> None:
        self.label_names = list(labels)
        self.label_values = [str(v) for v in labels.values()]
        self.bar_latency = bar_latency
        self.values: dict[str, Any] = {}

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        values, names, own = self.values, self.label_names, self.label_values

        def gauge(name: str, help_text: str, value: Any) -> Iterator[Any]:
            if value is not None:
                family = GaugeMetricFamily(name, help_text, labels=names)
                family.add_metric(own, float(value))
                yield family

        for key, name, help_text in GAUGES:
            yield from gauge(name, help_text, values.get(key))
        for key, name, help_text in COUNTERS:
            if values.get(key) is not None:
                family = CounterMetricFamily(name, help_text, labels=names)
                family.add_metric(own, float(values[key]))
                yield family
        last_bar = values.get("last_bar")
        yield from gauge("coin_last_bar_open_time_seconds", "Open time of the last processed bar.",
                         None if last_bar is None else last_bar / 1000)
        state = values.get("risk_state")
        if state is not None:
            family = GaugeMetricFamily("coin_risk_state", "Risk state (1 for the current one).",
                                       labels=[*names, "state"])
            for name in _RISK_STATES:
                family.add_metric([*own, name], 1.0 if name == state else 0.0)
            yield family
        psi = values.get("feature_psi") or {}
        if psi:  # feature drift (monitoring/drift.py), one series per feature
            family = GaugeMetricFamily("coin_feature_psi",
                                       "Population stability index of a feature vs its training split.",
                                       labels=[*names, "feature"])
            for name, value in sorted(psi.items()):
                family.add_metric([*own, str(name)], float(value))
            yield family
        p99 = self.bar_latency.percentile(0.99)
        yield from gauge("coin_bar_latency_p99_seconds", "p99 of the per-bar processing time.",
                         None if p99 is None else p99 / 1e6)
