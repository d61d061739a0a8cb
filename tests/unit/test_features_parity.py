"""Online vs offline features over the real candle files (gaps, zero-volume and flat bars included)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coin_cli.config import FeaturesConfig
from coin_cli.features import FeatureSpec, OnlineFeatureEngine, compute_offline
from tests.conftest import TEST_DATA

FILES = ["binance_BTCUSDT_5m.csv", "binance_ETHUSDT_5m.csv", "bittrex_ETCBTC_1m.csv"]


def _read(name: str) -> pd.DataFrame:
    frame = pd.read_csv(TEST_DATA / name)
    return frame.rename(columns={"open_time_ms": "open_time"})


def _online(frame: pd.DataFrame, spec: FeatureSpec | None = None) -> pd.DataFrame:
    engine = OnlineFeatureEngine(spec)
    columns = ["open_time", "open", "high", "low", "close", "volume"]
    rows = [engine.update(dict(zip(columns, values, strict=True)))
            for values in frame[columns].itertuples(index=False, name=None)]
    return pd.DataFrame(rows, index=frame.index)


@pytest.mark.parametrize("name", FILES)
def test_online_matches_offline_on_real_file(name: str) -> None:
    frame = _read(name)
    offline = compute_offline(frame)
    online = _online(frame)
    assert list(online.columns) == list(offline.columns)
    spec = FeatureSpec.default()
    for feat in spec.features:
        off = offline[feat.name].to_numpy()
        on = online[feat.name].to_numpy()
        # NaN exactly during the warm-up, values after it
        assert np.isnan(off[: feat.warmup]).all() and np.isnan(on[: feat.warmup]).all()
        assert np.isfinite(off[feat.warmup:]).all() and np.isfinite(on[feat.warmup:]).all()
        scale = float(np.std(off[feat.warmup:])) or 1.0
        worst = float(np.max(np.abs(on[feat.warmup:] - off[feat.warmup:]))) / scale
        assert worst <= 1e-9, f"{name} {feat.name}: online-offline difference {worst:.3g} of its scale"


def test_files_really_have_the_hard_cases() -> None:
    """The parity above is only worth something if the data has gaps, zero-volume and flat bars."""
    btc = _read("binance_BTCUSDT_5m.csv")
    steps = np.diff(btc["open_time"].to_numpy())
    assert (steps > 300_000).sum() == 2
    assert (btc["volume"] == 0).sum() == 10
    etc = _read("bittrex_ETCBTC_1m.csv")
    flat = (etc["open"] == etc["close"]) & (etc["high"] == etc["low"])
    assert flat.sum() == 549
    # a flat stretch long enough for a window with no movement at all -> vol exactly 0
    feats = compute_offline(etc)
    assert (feats["vol_24"].dropna() == 0.0).any() or (feats["rsi_14"].dropna() == 50.0).any()


def test_parity_with_a_custom_spec() -> None:
    frame = _read("bittrex_ETCBTC_1m.csv").iloc[:3000]
    spec = FeatureSpec.from_config(FeaturesConfig(return_horizons=[2, 7], vol_windows=[3], rsi_period=2,
                                                  ma_window=5, volume_window=3))
    offline = compute_offline(frame, spec)
    online = _online(frame, spec)
    np.testing.assert_array_equal(online.to_numpy(), offline.to_numpy())
