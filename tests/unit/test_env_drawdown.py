"""One drawdown from the peak (issue 14): the env, the risk manager and the metrics all give the
hand-computed values, and no other module computes it again."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from coin_cli.env.drawdown import drawdown_series, max_drawdown, peak_and_drawdown
from coin_cli.pipelines import metrics
from coin_cli.runtime.risk import RiskLimits, RiskManager

EQUITY = [100.0, 120.0, 90.0, 130.0, 65.0, 70.0]
BY_HAND = [0.0, 0.0, 0.25, 0.0, 0.5, 1 - 70 / 130]


def test_every_user_gets_the_hand_computed_drawdown() -> None:
    peak, scalar = 0.0, []
    for e in EQUITY:
        peak, dd = peak_and_drawdown(e, peak)
        scalar.append(dd)
    assert scalar == pytest.approx(BY_HAND, abs=1e-15)
    np.testing.assert_allclose(drawdown_series(np.array(EQUITY)), BY_HAND, atol=1e-15)
    assert max_drawdown(np.array(EQUITY)) == metrics.max_drawdown(np.array(EQUITY)) == 0.5
    risk = RiskManager(RiskLimits(max_drawdown=0.99, reduce_drawdown=0.99))
    seen = []
    for bar, e in enumerate(EQUITY):
        risk.on_mark(e, bar)
        seen.append(risk.drawdown)
    assert seen == pytest.approx(BY_HAND, abs=1e-15) and risk.max_drawdown_seen == 0.5
    assert peak_and_drawdown(0.0, 0.0) == (0.0, 1.0)          # nothing ever to lose: ruined
    assert max_drawdown(np.array([])) == 0.0


def test_no_other_module_computes_a_drawdown_from_the_peak() -> None:
    root = Path(__file__).resolve().parents[2] / "coin_cli"
    pattern = re.compile(r"1\.0 - [\w.]*equity\w* / [\w.]*peak|maximum\.accumulate")  # code, not prose
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py")
                 if p.name != "drawdown.py" and pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []
