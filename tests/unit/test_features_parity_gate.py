"""The probe's online/offline parity gate on a real candle excerpt (gaps, zero-volume and flat bars):
the differences it reports are the ones injected, measured against a scale computed here, and the
gate opens and closes exactly at its tolerance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coin_cli.features import FeatureSpec, compute_offline_array
from coin_cli.features.parity import PARITY_TOLERANCE, parity_report
from tests.conftest import TEST_DATA

ROW = 3000  # well after every warm-up, before the excerpt's first maintenance gap


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    frame = pd.read_csv(TEST_DATA / "binance_BTCUSDT_5m.csv").rename(columns={"open_time_ms": "open_time"})
    return frame.iloc[:4000].reset_index(drop=True)


def _offline(candles: pd.DataFrame, spec: FeatureSpec) -> np.ndarray:
    return compute_offline_array(*(candles[c].to_numpy(np.float64) for c in ("high", "low", "close", "volume")), spec)


def _scale(column: np.ndarray, warmup: int) -> float:
    """The gate's scale, recomputed: std of the feature's finite values after its warm-up."""
    values = column[warmup:]
    return float(np.std(values[np.isfinite(values)]))


def test_the_reported_difference_is_the_injected_one(candles: pd.DataFrame) -> None:
    spec = FeatureSpec.default()
    offline = _offline(candles, spec)
    j = spec.names.index("rsi_14")
    warmup = spec.features[j].warmup
    scale = _scale(offline[:, j], warmup)
    original = offline[ROW, j]
    offline[ROW, j] = original + 1e-6 * scale
    injected = abs(offline[ROW, j] - original)  # the float actually added, not the intended 1e-6
    scale = _scale(offline[:, j], warmup)  # of the matrix the gate is given, the injected value included
    report = parity_report(candles, spec, offline)
    rsi = report["features"]["rsi_14"]
    assert rsi["scale"] == pytest.approx(scale, rel=1e-12)
    assert rsi["max_abs_diff"] == pytest.approx(injected, rel=1e-9)
    assert rsi["max_scaled_diff"] == pytest.approx(injected / scale, rel=1e-9)
    assert report["max_scaled_diff"] == rsi["max_scaled_diff"]
    assert not report["passed"] and not report["bit_identical"]
    others = {name: f["max_abs_diff"] for name, f in report["features"].items() if name != "rsi_14"}
    assert others == dict.fromkeys(others, 0.0)  # one cell changed: nothing else may differ


@pytest.mark.parametrize(("fraction", "passes"), [(0.5, True), (2.0, False)])
def test_the_gate_opens_and_closes_at_its_tolerance(candles: pd.DataFrame, fraction: float, passes: bool) -> None:
    spec = FeatureSpec.default()
    offline = _offline(candles, spec)
    j = spec.names.index("ret_1")
    offline[ROW, j] += fraction * PARITY_TOLERANCE * _scale(offline[:, j], spec.features[j].warmup)
    report = parity_report(candles, spec, offline)
    assert report["passed"] is passes
    assert report["bit_identical"] is False  # even a difference the gate tolerates is not identity


def test_nan_on_one_side_fails_and_the_untouched_matrix_is_bit_identical(candles: pd.DataFrame) -> None:
    spec = FeatureSpec.default()
    offline = _offline(candles, spec)
    untouched = parity_report(candles, spec, offline.copy())
    assert untouched["passed"] and untouched["bit_identical"] and untouched["rows"] == len(candles)
    j = spec.names.index("rsi_14")
    offline[ROW, j] = np.nan
    report = parity_report(candles, spec, offline)
    assert report["features"]["rsi_14"]["max_scaled_diff"] == float("inf")
    assert not report["passed"]
