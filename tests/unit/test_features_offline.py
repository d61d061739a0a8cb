"""Offline features: hand-computed values, causality (perturb the future), finite memory, bad input."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from coin_cli.config import FeaturesConfig
from coin_cli.errors import DataError
from coin_cli.features import FeatureDef, FeatureSpec, compute_offline, feature_manifest


def _candles(close: list[float], volume: list[float] | None = None) -> pd.DataFrame:
    close_arr = np.asarray(close, dtype=float)
    return pd.DataFrame({
        "open_time": np.arange(len(close_arr), dtype=np.int64) * 60_000,
        "open": close_arr, "high": close_arr * 1.01, "low": close_arr * 0.99, "close": close_arr,
        "volume": np.asarray(volume if volume is not None else [1.0 + i for i in range(len(close_arr))]),
    })


def _random_candles(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    frame = _candles(list(close), list(rng.lognormal(2, 1, n)))
    frame["high"] = frame["close"] * (1 + rng.uniform(0, 0.01, n))
    frame["low"] = frame["close"] * (1 - rng.uniform(0, 0.01, n))
    return frame


def test_hand_computed_values() -> None:
    spec = FeatureSpec((FeatureDef("ret", 1), FeatureDef("ret", 2), FeatureDef("vol", 2), FeatureDef("rsi", 2),
                        FeatureDef("ma_dist", 2), FeatureDef("volz", 3), FeatureDef("range", 1)))
    frame = _candles([100.0, 110.0, 99.0, 99.0], volume=[1.0, 3.0, 7.0, 7.0])
    f = compute_offline(frame, spec)
    r1, r2, r3 = math.log(1.1), math.log(99 / 110), 0.0
    assert math.isnan(f.loc[0, "ret_1"]) and f.loc[1, "ret_1"] == pytest.approx(r1, abs=1e-15)
    assert math.isnan(f.loc[1, "ret_2"]) and f.loc[2, "ret_2"] == pytest.approx(math.log(0.99), abs=1e-15)
    assert f.loc[2, "vol_2"] == pytest.approx(math.sqrt((r1 * r1 + r2 * r2) / 2), rel=1e-12)
    assert f.loc[3, "vol_2"] == pytest.approx(abs(r2) / math.sqrt(2), rel=1e-12)
    assert f.loc[2, "rsi_2"] == pytest.approx(100 * r1 / (abs(r1) + abs(r2)), rel=1e-12)
    assert f.loc[3, "rsi_2"] == pytest.approx(0.0, abs=1e-12)  # the only move in the window was down
    # ma_dist at row 2: log price relative L = [0, r1, r1 + r2]; mean of last two; over vol_2
    L1, L2 = r1, r1 + r2
    assert f.loc[2, "ma_dist_2"] == pytest.approx((L2 - (L1 + L2) / 2) / math.sqrt((r1**2 + r2**2) / 2), rel=1e-12)
    x = [math.log1p(v) for v in (3.0, 7.0, 7.0)]  # the window of row 3 (warm-up is the window)
    mean = sum(x) / 3
    std = math.sqrt(sum((v - mean) ** 2 for v in x) / 3)
    assert math.isnan(f.loc[2, "volz_3"])
    assert f.loc[3, "volz_3"] == pytest.approx((x[2] - mean) / std, rel=1e-9)
    assert f.loc[0, "range"] == pytest.approx(math.log(1.01 / 0.99), rel=1e-12)
    assert r3 == 0.0


def test_windows_without_movement_are_exact() -> None:
    spec = FeatureSpec((FeatureDef("vol", 3), FeatureDef("rsi", 3), FeatureDef("ma_dist", 3), FeatureDef("volz", 3)))
    frame = _candles([100.0, 101.0, 101.0, 101.0, 101.0, 101.0], volume=[0.0, 5.0, 0.0, 0.0, 0.0, 0.0])
    f = compute_offline(frame, spec)
    assert f.loc[4, "vol_3"] == 0.0 and f.loc[5, "vol_3"] == 0.0
    assert f.loc[4, "rsi_3"] == 50.0 and f.loc[4, "ma_dist_3"] == 0.0
    assert f.loc[5, "volz_3"] == 0.0  # three zero volumes in the window


def test_causal_perturbing_the_future_changes_nothing_before() -> None:
    frame = _random_candles(600)
    base = compute_offline(frame)
    k = 400
    changed = frame.copy()
    rng = np.random.default_rng(9)
    for col in ("close", "high", "low", "volume"):
        changed.loc[k + 1:, col] = changed.loc[k + 1:, col].to_numpy() * rng.uniform(0.5, 2.0, len(frame) - k - 1)
    changed["high"] = changed[["high", "close"]].max(axis=1)
    changed["low"] = changed[["low", "close"]].min(axis=1)
    after = compute_offline(changed)
    pd.testing.assert_frame_equal(after.iloc[: k + 1], base.iloc[: k + 1])
    assert not np.allclose(after.iloc[k + 1:].to_numpy(), base.iloc[k + 1:].to_numpy(), equal_nan=True)


def test_finite_memory_old_bars_are_forgotten_after_the_window() -> None:
    frame = _random_candles(800)
    base = compute_offline(frame)
    k = 300
    changed = frame.copy()
    changed.loc[:k, ["close", "high", "low"]] *= 3.0
    changed.loc[:k, "volume"] *= 7.0
    after = compute_offline(changed)
    spec = FeatureSpec.default()
    start = k + spec.max_lag + 1
    np.testing.assert_allclose(after.iloc[start:].to_numpy(), base.iloc[start:].to_numpy(), rtol=1e-9, atol=1e-9)


def test_bad_candles_name_the_row_and_column() -> None:
    frame = _random_candles(50)
    frame.loc[17, "close"] = 0.0
    with pytest.raises(DataError, match=r"row 17 \(open_time 1020000\): close is 0.0"):
        compute_offline(frame)
    frame = _random_candles(50)
    frame.loc[3, "volume"] = float("nan")
    with pytest.raises(DataError, match=r"row 3 .*volume is nan"):
        compute_offline(frame)


def test_short_tables_are_all_nan_not_an_error() -> None:
    f = compute_offline(_random_candles(10))
    assert f.shape == (10, len(FeatureSpec.default().names))
    assert f[["ret_24", "vol_24", "vol_168", "rsi_14", "ma_dist_48", "volz_48"]].isna().all().all()
    assert f["ret_1"].isna().sum() == 1 and f["range"].notna().all()
    assert compute_offline(_random_candles(0)).empty


def test_spec_defaults_follow_the_config_and_the_manifest_hash_moves_with_parameters() -> None:
    default = FeatureSpec.default()
    assert FeatureSpec.from_config(FeaturesConfig()) == default
    assert default.names == ["ret_1", "ret_4", "ret_24", "vol_24", "vol_168", "rsi_14", "ma_dist_48",
                             "volz_48", "range"]
    assert default.warmup == 168
    manifest = feature_manifest(default)
    assert manifest["warmup"] == 168 and manifest["names"] == default.names
    assert len(manifest["implementation_hash"]) == 64
    assert manifest["implementation_hash"] == default.implementation_hash()
    other = FeatureSpec.from_config(FeaturesConfig(rsi_period=21))
    assert other.implementation_hash() != default.implementation_hash()
    with pytest.raises(ValueError, match="duplicate"):
        FeatureSpec((FeatureDef("ret", 1), FeatureDef("ret", 1)))
