"""The probe's parity gate and chart writer: a real difference is caught; the SVG is valid."""

from __future__ import annotations

import numpy as np
import pandas as pd

from coin_cli.features import FeatureSpec, compute_offline_array
from coin_cli.features.parity import parity_report


def _frame(n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(8)
    close = 10 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    return pd.DataFrame({"open_time": np.arange(n) * 60_000, "open": close, "high": close * 1.01,
                         "low": close * 0.99, "close": close, "volume": rng.lognormal(0, 1, n)})


def test_parity_report_passes_and_catches_a_perturbed_feature() -> None:
    frame = _frame()
    spec = FeatureSpec.default()
    good = parity_report(frame, spec)
    assert good["passed"] and good["bit_identical"] and good["max_scaled_diff"] == 0.0
    offline = compute_offline_array(*(frame[c].to_numpy() for c in ("high", "low", "close", "volume")), spec)
    j = spec.names.index("rsi_14")
    offline[300, j] += 1e-6 * np.nanstd(offline[:, j])  # far above 1e-9 of the scale
    bad = parity_report(frame, spec, offline)
    assert not bad["passed"] and not bad["bit_identical"]
    assert bad["features"]["rsi_14"]["max_scaled_diff"] > 1e-7
    assert bad["features"]["ret_1"]["max_scaled_diff"] == 0.0
    offline[350, j] = np.nan  # NaN on one side only is a failure, not a silent pass
    assert parity_report(frame, spec, offline)["features"]["rsi_14"]["max_scaled_diff"] == float("inf")
