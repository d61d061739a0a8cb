"""build_runtime: THE one place where the runtime is wired (DESIGN.md §5).

market source -> GapFiller -> OnlineFeatureEngine -> policy -> RiskManager -> OrderManager ->
broker -> StateStore -> MetricsLogger / AlertEngine (-> notifier).

Warm-up: the feature engine first sees the `ready` bars stored before the first bar the ledger
trades (features.warmup + env.lookback of them, fewer when the store has fewer), so the first bar
already decides: `--mode replay --from X` warms on the stored bars before X, paper on the history
up to now (fetched over REST when the store lacks it, paper.py). Paper from bar X to Y and a
replay --from X --to Y on a fresh ledger are therefore one computation.

A restart resumes from the state file: balances, risk state and the pending decision come back
from the last commit, and the feature engine is re-warmed over the same warm-up bars and every
bar the ledger processed (first_bar .. last_bar, from the candle provider), so its running sums
-- and therefore every later decision -- are bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coin_cli.errors import UsageError
from coin_cli.monitoring.alerts import AlertEngine
from coin_cli.monitoring.metrics import MetricsLogger
from coin_cli.runtime.brokers import PaperBroker
from coin_cli.runtime.brokers.binance import BinanceBroker
from coin_cli.runtime.component_factories import (
    drift_monitor,
    needs_observation,
    notifier_for,
    policy_input_factory,
    resolve_policy,
)
from coin_cli.runtime.gap_filler import ArrayCandleProvider, GapFiller
from coin_cli.runtime.history import load_replay_candles, warm_up
from coin_cli.runtime.live_build import preflight_account, require_live
from coin_cli.runtime.orders import OrderManager, check_strategy_id
from coin_cli.runtime.paper import SOURCE as SOURCE_PAPER
from coin_cli.runtime.paper import CandleRecorder, StoreRestFetcher, market_source, now_ms, prepare_market
from coin_cli.runtime.portfolio import Portfolio
from coin_cli.runtime.risk import ACTIVE, HALTED, RiskLimits, RiskManager
from coin_cli.runtime.sources import ReplaySource, StreamHealth
from coin_cli.runtime.state import Checkpoint, StateIdentity, StateStore

if TYPE_CHECKING:
    from collections.abc import Callable

    from coin_cli.config import Settings
    from coin_cli.runs import Run
    from coin_cli.runtime.sources import MarketSource

log = logging.getLogger("coin.runtime")

REPLAY_COMMIT_EVERY = 1000   # bars per commit while the queue is busy (it also commits when idle)
MODES = ("replay", "paper", "live")


@dataclass
class TradeRequest:
    """What the command asks for beyond Settings (flags with no config key)."""

    start_ms: int | None = None
    end_ms: int | None = None
    max_bars: int | None = None
    duration_s: float | None = None
    reset_halt: bool = False


@dataclass
class Components:
    """What one run is made of, wired once by build_runtime; the bar calls them, never rebinds them."""

    source: MarketSource
    gap_filler: GapFiller
    features: Any
    obs_window: Any
    policy: Any
    make_input: Callable[..., Any]
    risk: RiskManager
    orders: OrderManager
    broker: Any
    portfolio: Portfolio
    state: StateStore
    metrics: MetricsLogger
    alerts: AlertEngine


class PendingDecision:
    """The target decided at a bar's close (risk stage writes it) and traded at the next bar's open
    (fill stage reads and clears it); committed with the bar."""

    __slots__ = ("decision_bar", "reason", "target")

    def __init__(self, target: float | None, decision_bar: int | None, reason: str | None) -> None:
        self.target, self.decision_bar, self.reason = target, decision_bar, reason or "ok"


class LoopCounters:
    """What the loop counts: bars this run (and before it, from the ledger), the bar count at the
    last commit, rejected orders, and the metrics stage's own time (reported with the next bar)."""

    __slots__ = ("bars", "before", "committed", "last_metrics_us", "rejected")

    def __init__(self, before: int) -> None:
        self.before, self.bars, self.committed, self.rejected, self.last_metrics_us = before, 0, 0, 0, 0


class Runtime:
    """One trading run: its identity, the components (`Components`), what a bar reads and writes
    (`pending`, `counters`, first/last bar, the alert latches) and the run's stop conditions."""

    def __init__(self, *, symbol: str, interval: str, mode: str, policy_name: str, state_path: Path,
                 parts: Components, checkpoint: Checkpoint | None, max_bars: int | None, commit_every: int,
                 lookback: int) -> None:
        self.symbol, self.interval, self.mode, self.policy_name = symbol, interval, mode, policy_name
        self.state_path = state_path
        self.parts = parts
        # the components live in `parts` only (the bar pipeline binds them to locals once)
        self.stream = StreamHealth(parts.alerts, 0.0)
        self.recorder: Any = None   # paper: appends the stream's closed candles to the store
        self.drift: Any = None      # DriftMonitor when the policy's train run recorded a reference
        self.live: Any = None       # LiveSession: the account side of --mode live
        self.assets: tuple[str, str] = ("", "")   # (base, quote) assets of the symbol, live mode
        # what a bar reads and writes
        cp = checkpoint or Checkpoint()
        self.resumed_from = cp.last_bar
        self.first_bar, self.last_bar = cp.first_bar, cp.last_bar
        self.pending = PendingDecision(cp.pending_target, cp.pending_decision_bar, cp.pending_reason)
        self.counters = LoopCounters(cp.bars)
        self.drawdown_alert_on = False
        self.stale_alert_on = False
        self.in_bar = False   # True once an exception left a bar half processed: never commit then
        self.recovering: dict[str, dict[str, Any]] = parts.state.pending_intents()
        # fixed for the run
        self.clock: Callable[[], int] | None = None   # None: replay time (each bar arrives at its close)
        self.initial_equity = parts.portfolio.initial_cash
        # TradingEnv's first decision: the first bar with a full `lookback` window of valid features.
        self.ready_count = parts.features.warmup + lookback
        self.commit_every = commit_every
        self.queue_items = 64
        self.data_info: dict[str, Any] = {}
        self._processor: Callable[[Any], None] | None = None
        # when to stop
        self.max_bars = sys.maxsize if max_bars is None else max_bars
        self.duration_s: float | None = None
        self.done = False
        self.stop_requested: int | None = None

    @property
    def bars_run(self) -> int:
        """Bars processed by this run."""
        return self.counters.bars

    @property
    def rejected(self) -> int:
        return self.counters.rejected

    @property
    def pending_target(self) -> float | None:
        return self.pending.target

    @property
    def bars_total(self) -> int:
        """Bars in the ledger, this run's included."""
        return self.counters.before + self.counters.bars

    @property
    def uncommitted(self) -> int:
        """Bars processed since the last commit."""
        return self.counters.bars - self.counters.committed

    def bar_processor(self) -> Callable[[Any], None]:
        """The compiled per-bar pipeline (built on first use: set `clock` before processing)."""
        if self._processor is None:
            from coin_cli.runtime.loop import make_bar_processor

            self._processor = make_bar_processor(self)
        return self._processor

    def checkpoint(self) -> Checkpoint:
        p = self.pending
        cp = Checkpoint(first_bar=self.first_bar, last_bar=self.last_bar, bars=self.bars_total,
                        pending_target=p.target, pending_decision_bar=p.decision_bar,
                        pending_reason=p.reason if p.target is not None else None,
                        order_seq=self.parts.orders.order_seq)
        self.parts.portfolio.snapshot(cp)
        self.parts.risk.snapshot(cp)
        return cp

    def commit(self) -> None:
        if self.recorder is not None:  # the candles first: a restart re-warms from the store
            self.recorder.flush()
        self.parts.state.commit(self.checkpoint())
        self.counters.committed = self.counters.bars

    def commit_if_clean(self) -> None:
        """At a stop or an error: commit what complete bars did; a half-processed bar is dropped
        (its buffered rows die with the process and the restart redoes it from the last commit)."""
        if not self.in_bar and self.uncommitted:
            self.commit()

    def snapshot(self) -> dict[str, Any]:
        pf, risk = self.parts.portfolio, self.parts.risk
        return {"symbol": self.symbol, "interval": self.interval, "mode": self.mode, "policy": self.policy_name,
                "last_bar": self.last_bar, "bars": self.bars_run, "equity": pf.equity, "cash": pf.cash,
                "qty": pf.qty, "weight": pf.weight, "drawdown": risk.drawdown,
                "max_drawdown": risk.max_drawdown_seen, "risk_state": risk.state, "trades": pf.trades,
                "fees": pf.fees, "alerts": self.parts.alerts.total, "stream": self.stream.describe(),
                "feature_psi": dict(self.drift.values) if self.drift is not None else None}

    def close(self) -> None:
        self.parts.metrics.close()
        self.parts.state.close()
        close = getattr(self.parts.alerts.notifier, "close", None)
        if close is not None:
            close(5.0)


def default_state_path(settings: Settings, identity: StateIdentity) -> Path:
    """trade.state_file, else one file per ledger identity: the policy's name and a short hash of
    the whole identity are in the name, so another policy or fee never resumes this ledger."""
    if settings.trade.state_file is not None:
        return Path(settings.trade.state_file)
    i = identity
    policy = re.sub(r"[^A-Za-z0-9_.-]+", "_", settings.trade.policy.strip())[:40] or "policy"
    return (Path(settings.paths.runs_dir) / "state"
            / f"{i.strategy_id}-{i.symbol}-{i.interval}-{i.mode}-{policy}-{i.short_hash()}.sqlite")


def ledger_identity(settings: Settings, execution: Any) -> StateIdentity:
    """The identity of the ledger `settings` trade into, from the ExecutionModel's parameters
    (exchange filters fed into the model change it by themselves)."""
    from coin_cli.agents.loader import policy_identity
    from coin_cli.data.schema import normalize_interval

    return StateIdentity.for_runtime(settings.data.symbol, normalize_interval(settings.data.interval),
                                     settings.trade.mode, settings.trade.strategy_id,
                                     policy_identity(settings.trade.policy, settings), execution,
                                     settings.env.initial_cash)


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise UsageError(f"--mode {mode!r}: expected one of {', '.join(MODES)}")


def build_runtime(settings: Settings, run: Run | None, request: TradeRequest | None = None,
                  broker_factory: Callable[[Any, Portfolio], Any] | None = None) -> Runtime:
    """Wire every component for `settings` (symbol, interval, mode, policy, risk, paths).

    `broker_factory(execution_model, portfolio)` picks the broker (default: the paper broker);
    a broker with `external = True` gets a durable intent log (committed before each submit)."""
    from coin_cli.data.schema import interval_ms, normalize_interval
    from coin_cli.env.execution import ExecutionModel, ExecutionParams
    from coin_cli.env.observation import ObservationBuilder, ObservationWindow
    from coin_cli.features import FeatureSpec, OnlineFeatureEngine

    request = request or TradeRequest()
    mode = settings.trade.mode
    check_mode(mode)
    symbol, interval = settings.data.symbol, normalize_interval(settings.data.interval)
    strategy_id = check_strategy_id(settings.trade.strategy_id)
    if request.max_bars is not None and request.max_bars < 1:
        raise UsageError(f"--max-bars {request.max_bars}: expected a whole number >= 1")
    if request.duration_s is not None and not request.duration_s > 0:
        raise UsageError(f"--duration {request.duration_s:g}: expected a number of seconds > 0")
    if mode != "replay" and (request.start_ms is not None or request.end_ms is not None):
        raise UsageError(f"--from/--to are for --mode replay; {mode} trades the live stream from now")
    keys = require_live(settings) if mode == "live" else None   # keys and the opt-in, before anything else
    if request.start_ms is not None and request.end_ms is not None and request.end_ms <= request.start_ms:
        raise UsageError("--to must be after --from")

    policy = resolve_policy(settings)
    spec = FeatureSpec.from_config(settings.features)
    obs_window = None
    outputs = None
    if needs_observation(policy):
        obs_window = ObservationWindow(ObservationBuilder(spec.names, settings.env.lookback, spec))
    else:  # a policy that names the features it reads gets only those computed per bar
        outputs = getattr(policy, "feature_inputs", None)
    features = OnlineFeatureEngine(spec, outputs=outputs)
    market = budget = None
    if mode != "replay":  # reach the market before the ledger is touched: unreachable is exit 4, nothing written
        from coin_cli.integrations.binance.rest import WeightBudget

        budget = WeightBudget(settings.data.max_weight_per_minute)   # one per process: limits are per IP
        market = prepare_market(settings, features.warmup + settings.env.lookback, budget)
    # paper and live: the exchange's filters (exchangeInfo); replay: the env.* settings, as TradingEnv
    execution = ExecutionModel(market.params if market is not None else ExecutionParams.from_settings(settings))
    limits = RiskLimits.from_settings(settings, interval_ms(interval))

    portfolio = Portfolio(execution, settings.env.initial_cash)
    identity = ledger_identity(settings, execution)
    state_path = default_state_path(settings, identity)
    if keys is not None:  # the account can trade and holds the ledger's cash (before the ledger exists)
        preflight_account(settings, keys, market.filters, new_ledger=not state_path.exists())
        broker: Any = BinanceBroker(symbol, market.filters, rate_limit_wait_cap=limits.stale_ms / 2000)
    else:
        broker = (broker_factory or PaperBroker)(execution, portfolio)
    state = StateStore(state_path, identity, durable=bool(broker.external))
    try:
        cp = state.load()
        risk = RiskManager(limits)
        if cp is not None:
            portfolio.restore(cp)
            risk.restore(cp)

        ready = features.warmup + settings.env.lookback
        if market is not None:  # paper and live: the store brought up to now, then the kline stream
            writer, arrays = market.writer, market.arrays
            data_info = {"generated": False, "source": SOURCE_PAPER, "rows": len(arrays)}
            first = cp.first_bar if cp is not None and cp.first_bar is not None else int(arrays.close_time[-1]) + 1
            next_open = warm_up(features, obs_window, arrays, first, ready, cp)
            gap_filler = GapFiller(None, next_open, fetcher=StoreRestFetcher(settings, writer, budget))
            source = market_source(settings, symbol, interval)
        else:
            arrays, data_info = load_replay_candles(settings, request)
            first = cp.first_bar if cp is not None and cp.first_bar is not None else request.start_ms
            next_open = warm_up(features, obs_window, arrays, first, ready, cp)
            gap_filler = GapFiller(ArrayCandleProvider(arrays), next_open if cp is not None else None)
            after = cp.last_bar if cp is not None else None
            if after is None and request.start_ms is not None:
                after = request.start_ms - 1
            source = ReplaySource(arrays, after=after, max_bars=request.max_bars, speed=settings.trade.speed)

        orders = OrderManager(strategy_id, symbol, execution, risk, order_seq=cp.order_seq if cp else 0)
        labels = {"symbol": symbol, "interval": interval, "mode": mode, "strategy": strategy_id}
        prom = Path(settings.trade.prom_file) if settings.trade.prom_file else None
        metrics = MetricsLogger(run.path("metrics.jsonl") if run is not None else None, labels=labels,
                                prom_file=prom)
        alerts = AlertEngine(notifier_for(settings), f"{symbol} {interval} {mode} {settings.trade.policy}",
                             drawdown_threshold=limits.reduce_drawdown)

        def on_risk_event(bar: int | None, before: str, after_state: str, reason: str) -> None:
            state.record_risk_event(bar, before, after_state, reason)
            alerts.risk_changed(bar, before, after_state, reason)

        risk.on_event = on_risk_event
        parts = Components(source=source, gap_filler=gap_filler, features=features, obs_window=obs_window,
                           policy=policy, make_input=policy_input_factory(), risk=risk, orders=orders,
                           broker=broker, portfolio=portfolio, state=state, metrics=metrics, alerts=alerts)
        rt = Runtime(symbol=symbol, interval=interval, mode=mode, policy_name=settings.trade.policy,
                     state_path=state.path, parts=parts, checkpoint=cp, max_bars=request.max_bars,
                     commit_every=REPLAY_COMMIT_EVERY, lookback=settings.env.lookback)
        rt.data_info = data_info
        rt.stream = StreamHealth(alerts, settings.monitoring.stream_down_after)
        rt.duration_s = request.duration_s
        rt.drift = drift_monitor(settings, features, obs_window)
        if market is not None:
            rt.clock = now_ms
            rt.recorder = CandleRecorder(market.writer)
        if keys is not None:
            from coin_cli.runtime.live import LiveSession

            rt.assets = (market.filters.base_asset, market.filters.quote_asset)
            rt.live = LiveSession(settings, broker, keys, budget, rt.assets)
            rt.recovering = {}   # live resolves unfinished orders by querying them (LiveSession.start)
        from coin_cli.data.schema import ms_to_iso

        if risk.state == HALTED and cp is not None:
            alerts.risk_changed(cp.risk_since_bar, ACTIVE, HALTED,
                                f"still halted since bar {ms_to_iso(cp.risk_since_bar)}: {cp.risk_reason}")
        if request.reset_halt and risk.reset_halt(portfolio.equity, rt.last_bar):
            rt.commit()
        return rt
    except BaseException:
        state.close()
        raise
