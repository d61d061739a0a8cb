"""Charts are valid SVG with the expected series; long curves are decimated for drawing."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from coin_cli.report.charts import COLUMNS, curve_chart, equity_lines_chart, trade_chart
from coin_cli.report.figures import TradeSeries

NS = "{http://www.w3.org/2000/svg}"


def _series(n: int) -> TradeSeries:
    t = 1_577_836_800_000 + np.arange(n, dtype=np.int64) * 60_000
    close = 100 + np.cumsum(np.random.default_rng(1).standard_normal(n)) * 0.05
    position = np.where((np.arange(n) // 50) % 2 == 0, 1.0, 0.0)
    equity = 10_000 + np.cumsum(np.diff(close, prepend=close[:1]) * position)
    risk = np.zeros(n, dtype=np.int8)
    risk[n // 2: n // 2 + n // 10] = 1
    risk[-n // 10:] = 2
    return TradeSeries(t, close, equity, position, risk, [])


def _group(root: ET.Element, gid: str) -> ET.Element:
    found = [g for g in root.iter(f"{NS}g") if g.get("id") == gid]
    assert found, f"no <g id={gid!r}> in the chart"
    return found[0]


def _points(group: ET.Element) -> int:
    return sum(len(re.findall(r"[ML] ", p.get("d", ""))) for p in group.iter(f"{NS}path"))


def test_trade_chart_has_every_series_and_the_risk_shading(tmp_path: Path) -> None:
    path = trade_chart(_series(5000), tmp_path / "equity.svg", "BTCUSDT 1m replay")
    root = ET.parse(path).getroot()
    for gid in ("equity", "buyhold", "drawdown", "weight", "buy", "sell"):
        _group(root, gid)
    texts = "".join(t.text or "" for t in root.iter(f"{NS}text"))
    assert "BTCUSDT 1m replay" in texts and "buy and hold (final" in texts and "strategy (final" in texts
    assert "REDUCING" in texts and "HALTED" in texts and "drawdown %" in texts


def test_a_million_bar_chart_is_decimated(tmp_path: Path) -> None:
    path = trade_chart(_series(1_000_000), tmp_path / "equity.svg", "1M bars")
    root = ET.parse(path).getroot()
    assert _points(_group(root, "equity")) <= 2 * COLUMNS + 2
    assert path.stat().st_size < 3_000_000


def test_equity_lines_chart_draws_folds_and_final_values(tmp_path: Path) -> None:
    times = list(range(0, 300 * 3_600_000, 3_600_000))
    lines = {"agent": list(np.linspace(100, 120, 300)), "buyhold": list(np.linspace(100, 90, 300)),
             "flat": [100.0] * 300}
    path = equity_lines_chart(tmp_path / "eq.png", "test split", times, lines, boundaries_ms=[times[150]])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = equity_lines_chart(tmp_path / "eq.svg", "test split", times, lines, boundaries_ms=[times[150]])
    root = ET.parse(svg).getroot()
    texts = [t.text or "" for t in root.iter(f"{NS}text")]
    assert "agent (final 120.00)" in texts and "buyhold (final 90.00)" in texts and "flat (final 100.00)" in texts
    for name in lines:
        _group(root, f"line-{name}")


def test_training_curve_and_empty_inputs_still_draw(tmp_path: Path) -> None:
    curve = [{"fold": 0, "timesteps": 512, "val_reward": "0.01"}, {"fold": 0, "timesteps": 1024, "val_reward": "0.02"},
             {"fold": 1, "timesteps": 512, "val_reward": "-0.01"}]
    root = ET.parse(curve_chart(tmp_path / "c.svg", curve, "training curve")).getroot()
    texts = [t.text or "" for t in root.iter(f"{NS}text")]
    assert "fold 0 (last 0.0200)" in texts and "fold 1 (last -0.0100)" in texts
    ET.parse(trade_chart(_series(0), tmp_path / "empty.svg", "no bars"))
    ET.parse(equity_lines_chart(tmp_path / "none.svg", "none", [], {"agent": []}))
