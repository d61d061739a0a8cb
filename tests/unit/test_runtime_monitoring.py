"""AlertEngine (codes, de-duplication, notifier isolation) and MetricsLogger (JSONL, summary, Prometheus)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from coin_cli.monitoring.alerts import CODES, AlertEngine
from coin_cli.monitoring.metrics import STAGES, LatencyHistogram, MetricsLogger
from coin_cli.monitoring.notifier import Alert, LogNotifier


class _Broken:
    def notify(self, alert: Alert) -> None:
        raise ConnectionError("telegram unreachable")

    def close(self, timeout: float = 5.0) -> None:
        return None


def test_alerts_are_deduplicated_until_cleared() -> None:
    notifier = LogNotifier()
    engine = AlertEngine(notifier, "BTCUSDT 1h replay", drawdown_threshold=0.15)
    for _ in range(5):
        engine.check_drawdown(0.16, 8400.0, 10_000.0)
    engine.check_drawdown(0.10, 9000.0, 10_000.0)   # above half the threshold: still the same episode
    engine.check_drawdown(0.17, 8300.0, 10_000.0)
    assert [a.code for a in notifier.sent] == ["DRAWDOWN"]
    engine.check_drawdown(0.05, 9500.0, 10_000.0)   # cleared
    engine.check_drawdown(0.16, 8400.0, 10_000.0)
    assert [a.code for a in notifier.sent] == ["DRAWDOWN", "DRAWDOWN"]
    assert notifier.sent[0].text.startswith("BTCUSDT 1h replay: drawdown 16.00%")


def test_every_code_and_keys() -> None:
    notifier = LogNotifier()
    engine = AlertEngine(notifier, "ctx")
    engine.risk_changed(5, "ACTIVE", "HALTED", "kill switch")
    engine.risk_changed(6, "HALTED", "HALTED", "again")
    engine.stale(7, 9000.0, 7200.0)
    engine.stale(8, 9000.0, 7200.0)
    engine.order_rejected("coin-A-1-0", "insufficient balance")
    engine.order_rejected("coin-A-2-0", "insufficient balance")   # another order: its own alert
    engine.reconcile_mismatch("cash 100 vs exchange 90")
    engine.stream_down("socket closed")
    engine.stream_up()
    engine.stream_down("socket closed")
    engine.feature_drift("vol_24", 0.4, 0.25)
    engine.feature_drift("vol_24", 0.5, 0.25)   # still active: suppressed
    engine.feature_drift("rsi_14", 0.3, 0.25)   # another feature: its own alert
    codes = [a.code for a in notifier.sent]
    assert codes == ["HALTED", "STALE_DATA", "ORDER_REJECTED", "ORDER_REJECTED", "RECONCILE_MISMATCH",
                     "STREAM_DOWN", "STREAM_DOWN", "FEATURE_DRIFT", "FEATURE_DRIFT"]
    assert set(codes) | {"DRAWDOWN"} == set(CODES)
    assert notifier.sent[0].severity == "critical"
    assert engine.total == 9 and engine.suppressed == 3
    with pytest.raises(ValueError):
        engine.raise_alert("NOPE", "x")


def test_a_failing_notifier_never_stops_the_loop(caplog: pytest.LogCaptureFixture) -> None:
    engine = AlertEngine(_Broken(), "ctx")
    assert engine.raise_alert("HALTED", "kill switch", "critical")
    assert "telegram unreachable" in caplog.text


def test_latency_histogram_percentiles() -> None:
    hist = LatencyHistogram()
    for us in range(1, 101):
        hist.add(us)
    hist.add(50_000)   # beyond the 10 ms range: counted, reported as the max
    assert hist.percentile(0.5) == 51
    assert hist.percentile(0.99) == 100
    assert hist.percentile(1.0) == 50_000
    assert LatencyHistogram().percentile(0.99) is None


def test_metrics_lines_are_json_and_prometheus_textfile(tmp_path: Path) -> None:
    prom = tmp_path / "coin.prom"
    logger = MetricsLogger(tmp_path / "metrics.jsonl", labels={"symbol": "BTCUSDT", "mode": "replay"},
                           prom_file=prom)
    logger.bar(1000, 101.5, 10_010.0, 5000.0, 49.3, 10.0, 0.01, "ACTIVE", "ok", 0.5, "coin-BTCUSDT-0-0",
               [1, 2, 3, 4, 5, 6, 7], 28, 9)
    logger.bar(2000, 102.0, 10_020.0, 5000.0, 49.3, 20.0, 0.0, "REDUCING", "warm-up", None, None,
               [1, 1, 1, 1, 1, 1, 1], 7, 0)
    logger.maybe_prometheus({"equity": 10_020.0, "qty": 49.3, "drawdown": 0.0, "bars": 2, "risk_state": "REDUCING",
                             "last_bar": 2000, "fees": math.nan}, force=True)
    logger.close()
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["order"] == "coin-BTCUSDT-0-0" and lines[0]["lat_us"] == [1, 2, 3, 4, 5, 6, 7]
    assert dict(zip(STAGES, lines[0]["lat_us"], strict=True))["metrics"] == 7 and lines[0]["total_us"] == 28
    assert lines[1]["target"] is None and lines[1]["order"] is None and lines[1]["risk"] == "REDUCING"
    assert set(lines[0]) >= {"bar", "equity", "position", "pnl", "drawdown", "lat_us"}
    text = prom.read_text()
    assert "# TYPE coin_equity gauge" in text and "# TYPE coin_bars_total counter" in text
    own = {"symbol": "BTCUSDT", "mode": "replay"}
    samples = {}   # (name, labels) -> value, read with the Prometheus text parser (label order is free)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value

    def value(name: str, **extra: str) -> float:
        return samples[name, tuple(sorted({**own, **extra}.items()))]

    assert value("coin_equity") == 10_020.0 and value("coin_position_qty") == 49.3
    assert value("coin_bars_total") == 2 and math.isnan(value("coin_fees_total"))
    assert value("coin_last_bar_open_time_seconds") == 2.0
    assert [value("coin_risk_state", state=s) for s in ("ACTIVE", "REDUCING", "HALTED")] == [0, 1, 0]
    assert value("coin_bar_latency_p99_seconds") == 28e-6   # the slower of the two bars
    assert not any(name == "coin_cash" for name, _ in samples)   # no value given: left out
    assert "coin_trades_total" not in text
    for line in text.splitlines():   # node_exporter textfile grammar: comments or `name{labels} value`
        name_labels, _, number = line.partition("} ")
        assert line.startswith("# ") or (name_labels.startswith("coin_") and " " not in number)
    assert {p.name for p in tmp_path.iterdir()} == {"coin.prom", "metrics.jsonl"}   # no temporary file left
    assert logger.latency_summary()["event_to_submit"]["n"] == 1


def test_prometheus_feature_psi_one_series_per_feature(tmp_path: Path) -> None:
    logger = MetricsLogger(None, labels={"symbol": "BTCUSDT"}, prom_file=tmp_path / "coin.prom")
    logger.maybe_prometheus({"equity": 1.0, "feature_psi": {"ret_1": 0.04, "vol_24": 0.31}}, force=True)
    families = text_string_to_metric_families((tmp_path / "coin.prom").read_text())
    psi = {s.labels["feature"]: s.value for family in families for s in family.samples if s.name == "coin_feature_psi"}
    assert psi == {"ret_1": 0.04, "vol_24": 0.31}
