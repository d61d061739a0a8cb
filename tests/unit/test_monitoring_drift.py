"""Feature drift: PSI of a rolling window against the training split's deciles."""

from __future__ import annotations

import math

import numpy as np

from coin_cli.monitoring.drift import DriftMonitor, reference_quantiles


def _psi_by_hand(reference: np.ndarray, live: np.ndarray) -> float:
    """PSI computed independently: numpy deciles of the reference, histogram of the live window."""
    edges = np.quantile(reference, np.linspace(0, 1, 11))
    edges[0], edges[-1] = -np.inf, np.inf
    actual = np.histogram(live, bins=edges)[0] / len(live)
    actual = np.maximum(actual, 1e-4)
    return float(sum((a - 0.1) * math.log(a / 0.1) for a in actual))


def test_psi_small_on_the_same_distribution_large_after_a_shift() -> None:
    rng = np.random.default_rng(3)
    train = rng.normal(0.0, 1.0, size=(5000, 2))
    train[:, 1] *= 10
    ref = reference_quantiles(train, ["a", "b"])
    monitor = DriftMonitor(ref, ["a", "b"], window=400, threshold=0.25, every=400)
    same = rng.normal(0.0, 1.0, size=400)
    shifted = rng.normal(1.5, 1.0, size=400) * 10
    values = None
    for x, y in zip(same, shifted, strict=True):
        values = monitor.update([x, y]) or values
    assert values is not None
    assert values["a"] < 0.1
    assert values["b"] > 0.25 and list(monitor.drifting()) == ["b"]
    assert math.isclose(values["a"], _psi_by_hand(train[:, 0], same), rel_tol=1e-9)
    assert math.isclose(values["b"], _psi_by_hand(train[:, 1], shifted), rel_tol=1e-9)


def test_rolling_window_forgets_old_bars_and_skips_nan() -> None:
    ref = reference_quantiles(np.arange(1000, dtype=float).reshape(-1, 1), ["x"])
    monitor = DriftMonitor(ref, ["x"], window=100, threshold=0.25, every=1)
    for v in [5000.0] * 100 + [float("nan")] * 5:
        monitor.update([v])
    assert monitor.values["x"] > 1.0          # everything in the top bin
    for v in np.linspace(0, 999, 100):
        last = monitor.update([v])
    assert last is not None and last["x"] < 0.05   # the old bars have left the window
