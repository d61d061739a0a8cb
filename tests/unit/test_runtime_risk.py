"""RiskManager: the drawdown kill switch from the PEAK, REDUCING, stale data, limits, persistence."""

from __future__ import annotations

import pytest

from coin_cli.runtime.risk import ACTIVE, HALTED, REDUCING, RiskLimits, RiskManager
from coin_cli.runtime.state import Checkpoint

HOUR = 3_600_000


def _risk(**kw: object) -> tuple[RiskManager, list[tuple]]:
    events: list[tuple] = []
    limits = RiskLimits(**{"max_drawdown": 0.2, "reduce_drawdown": 0.15, "stale_ms": 2 * HOUR, **kw})
    return RiskManager(limits, on_event=lambda *e: events.append(e)), events


def test_kill_switch_measures_drawdown_from_the_peak_not_the_start() -> None:
    risk, events = _risk()
    for bar, equity in enumerate([100.0, 150.0, 200.0]):
        risk.on_mark(equity, bar)
    assert risk.state == ACTIVE and risk.peak_equity == 200.0
    risk.on_mark(168.0, 3)              # 16% off the peak, still far above the start
    assert risk.state == REDUCING
    risk.on_mark(159.0, 4)              # 20.5% off the peak: kill switch, although +59% on the start
    assert risk.state == HALTED
    assert risk.drawdown == pytest.approx(0.205)
    assert [e[2] for e in events] == [REDUCING, HALTED]
    assert "kill switch" in events[-1][3]


def test_halted_is_sticky_until_reset() -> None:
    risk, events = _risk()
    risk.on_mark(100.0, 0)
    risk.on_mark(70.0, 1)
    assert risk.state == HALTED
    risk.on_mark(500.0, 2)              # a new peak does not lift the halt
    assert risk.state == HALTED
    assert risk.approve_target(0.5, 0.0, bar_close_time=0, now_ms=1) == (None, "halted")
    assert risk.reset_halt(500.0, 3)
    assert risk.state == ACTIVE and risk.peak_equity == 500.0
    assert events[-1][2:] == (ACTIVE, "reset by operator (--reset-halt)")


def test_halted_flattens_when_configured() -> None:
    risk, _ = _risk(flatten_on_halt=True)
    risk.on_mark(100.0, 0)
    risk.on_mark(50.0, 1)
    assert risk.approve_target(0.8, 0.6, 0, 1) == (0.0, "halted: flatten")
    assert risk.approve_target(0.8, 0.0, 0, 1) == (None, "halted")


def test_reducing_allows_only_smaller_positions_and_recovers_with_hysteresis() -> None:
    risk, _ = _risk()
    risk.on_mark(100.0, 0)
    risk.on_mark(84.0, 1)
    assert risk.state == REDUCING
    assert risk.approve_target(0.7, 0.5, 0, 1) == (None, "reducing: no new risk")
    assert risk.approve_target(0.3, 0.5, 0, 1) == (0.3, "reducing: reduce only")
    risk.on_mark(90.0, 2)               # 10% off the peak: not yet below 7.5%
    assert risk.state == REDUCING
    risk.on_mark(93.0, 3)
    assert risk.state == ACTIVE


def test_position_limit_and_long_only() -> None:
    risk, _ = _risk(max_position=0.6)
    assert risk.approve_target(0.9, 0.0, 0, 1) == (0.6, "clip: max_position")
    assert risk.approve_target(-0.4, 0.0, 0, 1) == (0.0, "clip: max_position")
    assert risk.approve_target(0.5, 0.0, 0, 1) == (0.5, "ok")
    short, _ = _risk(max_position=0.6, long_only=False)
    assert short.approve_target(-0.9, 0.0, 0, 1) == (-0.6, "clip: max_position")


def test_stale_bar_adds_no_new_risk() -> None:
    risk, _ = _risk()
    close_time = 10 * HOUR - 1
    fresh_now = close_time + 1
    stale_now = close_time + 2 * HOUR + 1          # older than 2 intervals
    assert risk.approve_target(0.5, 0.2, close_time, fresh_now) == (0.5, "ok")
    assert risk.approve_target(0.5, 0.2, close_time, stale_now) == (None, "stale: no new risk")
    assert risk.approve_target(0.1, 0.2, close_time, stale_now) == (0.1, "stale: reduce only")


def test_order_caps_and_daily_turnover() -> None:
    risk, _ = _risk(max_order_notional=1000.0, max_daily_turnover=2.0)
    # An order of 4000 quote for a move 0 -> 0.4 of a 10k account is cut to 1000: weight 0.1.
    target, reason = risk.cap_order(0.4, 0.0, 4000.0, 10_000.0, bar_open_time=0)
    assert (target, reason) == (pytest.approx(0.1), "cap: max_order_notional")
    assert risk.cap_order(0.05, 0.0, 500.0, 10_000.0, 0) == (0.05, "ok")
    risk.on_fill(19_500.0, 0)                       # 2x equity per day -> 500 left today
    target, reason = risk.cap_order(0.1, 0.0, 1000.0, 10_000.0, 0)
    assert (target, reason) == (pytest.approx(0.05), "cap: max_daily_turnover")
    # A new UTC day has a fresh budget.
    assert risk.cap_order(0.1, 0.0, 1000.0, 10_000.0, 86_400_000) == (0.1, "ok")


def test_snapshot_restore_round_trip() -> None:
    risk, _ = _risk()
    risk.on_mark(100.0, 0)
    risk.on_mark(70.0, 1)
    risk.on_fill(50.0, 1)
    cp = Checkpoint()
    risk.snapshot(cp)
    again, _ = _risk()
    again.restore(cp)
    assert (again.state, again.peak_equity, again.day_turnover) == (HALTED, 100.0, 50.0)
    assert again.max_drawdown_seen == pytest.approx(0.3)


def test_order_caps_never_cut_an_order_that_only_reduces_exposure() -> None:
    risk, _ = _risk(max_order_notional=100.0, max_daily_turnover=0.01)
    # new risk: cut to the order cap (100 of a 5,000 order moves 1/50 of the way)
    assert risk.cap_order(0.5, 0.0, 5_000.0, 10_000.0, 0) == (pytest.approx(0.01), "cap: max_order_notional")
    risk.on_fill(100.0, 0)                          # the day's budget (0.01 x 10,000 = 100) is now spent
    assert risk.cap_order(0.5, 0.01, 4_900.0, 10_000.0, 1)[0] == pytest.approx(0.01)
    # the flatten and every move toward flat pass whole, however large and whatever the day has traded
    assert risk.cap_order(0.0, 0.9, 9_000.0, 10_000.0, 2) == (0.0, "ok")
    assert risk.cap_order(0.3, 0.9, 6_000.0, 10_000.0, 3) == (0.3, "ok")
    assert risk.cap_order(-0.2, 0.9, 11_000.0, 10_000.0, 4)[1] == "cap: max_daily_turnover"  # flips side: new risk


def test_flatten_on_halt_is_the_default() -> None:
    from coin_cli.config import Settings

    assert RiskLimits().flatten_on_halt is True
    assert RiskLimits.from_settings(Settings(), HOUR).flatten_on_halt is True
