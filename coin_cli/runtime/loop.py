"""The trading loop: `process_market_event` per event, and the asyncio consumer around it.

Per closed candle t (after de-duplication and gap filling):

    fill      the order for the decision taken at bar t-1's close executes at bar t's OPEN:
              OrderManager sizes it (ExecutionModel, risk order caps), the intent goes into the
              write-ahead log, the broker fills it (the TradingEnv timing, DESIGN.md §4)
    mark      mark-to-market at t's close; risk state from the drawdown off the equity peak
    features  OnlineFeatureEngine.update(t)
    policy    policy.act -> target weight (skipped until the features are warm)
    risk      risk.approve_target -> the target to trade at the next open, or none
    state     last processed bar = t; committed with everything above in one transaction
    metrics   one metrics.jsonl line; alerts

A venue broker (`at_decision`, BinanceBroker) submits at the decision instead, sized at bar t's
close, from a task (submit_at_decision); its fills come back as events on the queue (live.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from typing import TYPE_CHECKING, Any

from coin_cli.aio import bounded, stop_task
from coin_cli.runtime.brokers.base import OrderRejected
from coin_cli.runtime.events import Candle, CandleBatch, EndOfStream, GapFilled, MarketEvent, StreamStatus, Wakeup

if TYPE_CHECKING:
    from collections.abc import Callable

    from coin_cli.runtime.build import Runtime

log = logging.getLogger("coin.runtime")

_ns = time.perf_counter_ns
_INF = float("inf")
FEEDER_STOP_S = 5.0   # how long a stopping market source may take before it is abandoned


def process_market_event(rt: Runtime, event: MarketEvent) -> None:
    """Handle one event from the queue (a candle, a replay batch, a stream status, the end)."""
    kind = type(event)
    if kind is CandleBatch:
        _process_columns(rt, event.columns)  # type: ignore[union-attr]
    elif kind is Candle:
        _process_candles(rt, rt.parts.gap_filler.admit(event))  # type: ignore[arg-type]
    elif kind is GapFilled:
        _process_candles(rt, rt.parts.gap_filler.complete())
    elif kind is StreamStatus:
        if event.up:  # type: ignore[union-attr]
            rt.stream.up()
            # every bar that closed while the socket was down, fetched in a task (never awaited here)
            rt.parts.gap_filler.request_fill(int(time.time() * 1000))
        else:
            rt.stream.down(event.detail or rt.parts.source.name)  # type: ignore[union-attr]
    elif kind is EndOfStream:
        rt.done = True
        if event.error is not None:  # type: ignore[union-attr]
            raise event.error  # type: ignore[union-attr]
    elif rt.live is not None:  # live: the venue's answers, booked in order with the candles
        rt.live.handle(rt, event)


def _process_candles(rt: Runtime, bars: Any) -> None:
    """Single candles from a live source (or a finished gap fill), already admitted in order."""
    if not bars:
        return
    process = rt.bar_processor()
    record = rt.recorder.add if rt.recorder is not None else None
    try:
        for bar in bars:
            process(bar.open_time, bar.open, bar.high, bar.low, bar.close, bar.volume, bar.close_time)
            if record is not None:
                record(bar)
            if rt.stop_requested or rt.bars_run >= rt.max_bars:
                return
    except BaseException:
        rt.in_bar = True   # a bar may be half processed: commit_if_clean must not commit it
        raise


def _process_columns(rt: Runtime, columns: tuple[list[Any], ...]) -> None:
    """A replay batch: closed candles as columns. The next bar in order goes straight to the
    pipeline; anything else (the first bar, a duplicate, a gap) through GapFiller.admit."""
    try:
        _process_rows(rt, columns)
    except BaseException:
        rt.in_bar = True   # a bar may be half processed: commit_if_clean must not commit it
        raise


def _process_rows(rt: Runtime, columns: tuple[list[Any], ...]) -> None:
    process = rt.bar_processor()
    gap_filler = rt.parts.gap_filler
    left = rt.max_bars - rt.bars_run   # bars this batch may still process (--max-bars)
    for open_time, open_, high, low, close, volume, close_time in zip(*columns, strict=True):
        if open_time == gap_filler.next_open:
            gap_filler.next_open = close_time + 1
            process(open_time, open_, high, low, close, volume, close_time)
            left -= 1
            if left <= 0 or rt.stop_requested:
                return
        else:
            for bar in gap_filler.admit(Candle(open_time, open_, high, low, close, volume, close_time)):
                process(bar.open_time, bar.open, bar.high, bar.low, bar.close, bar.volume, bar.close_time)
                if rt.stop_requested or rt.bars_run >= rt.max_bars:
                    return
            left = rt.max_bars - rt.bars_run


def process_bar(rt: Runtime, c: Candle) -> None:
    """One closed candle, in order, through every stage (see the module docstring)."""
    try:
        rt.bar_processor()(c.open_time, c.open, c.high, c.low, c.close, c.volume, c.close_time)
    except BaseException:
        rt.in_bar = True
        raise


def make_bar_processor(rt: Runtime) -> Callable[[int, float, float, float, float, float, int], None]:
    """The per-bar pipeline with every component bound to a local name: at 100k bars a second,
    attribute lookups and calls are most of the budget, so the common path (no order, no risk
    change, no alert) is written to touch as little as it can.

    Its callers set `rt.in_bar` when an exception leaves it (the bar may be half done), so the
    common path pays nothing for that guarantee (try blocks are free in Python 3.11)."""
    # reads and writes per bar: the pending decision, the counters, rt.first_bar/last_bar and the
    # two alert latches; every other name below is a component or a constant bound once
    pending = rt.pending
    counters = rt.counters
    pf = rt.parts.portfolio
    risk = rt.parts.risk
    on_mark = risk.on_mark
    approve = risk.approve_target
    stale_ms = risk.limits.stale_ms
    alerts = rt.parts.alerts
    dd_threshold = alerts.drawdown_threshold
    features = rt.parts.features
    update = features.update_values
    window = rt.parts.obs_window
    drift_update = rt.drift.update if rt.drift is not None else None
    policy = rt.parts.policy
    act = policy.act
    # A policy that reads only the feature row and the position weight offers act_row: no
    # PolicyInput to build per bar (a frozen dataclass costs ~1 µs to construct).
    act_row = getattr(policy, "act_row", None) if window is None else None
    make_input = rt.parts.make_input
    size_order = rt.parts.orders.order_size
    to_intent = rt.parts.orders.target_to_intent
    ready_count = rt.ready_count
    clock = rt.clock
    external = rt.parts.broker.external
    at_decision = bool(getattr(rt.parts.broker, "at_decision", False))
    commit_every = rt.commit_every
    metrics_bar = rt.parts.metrics.bar
    initial = rt.initial_equity
    ns = time.perf_counter_ns

    def process(open_time: int, open_: float, high: float, low: float, close: float, volume: float,
                close_time: int) -> None:
        t0 = ns()
        order_id: str | None = None
        submit_us = 0

        # fill: the previous decision trades at this bar's open (sized first: most bars need none)
        target = pending.target
        if target is not None and not at_decision:
            pending.target = None
            if size_order(target, pf.cash, pf.qty, open_) != 0.0:
                reason = pending.reason
                intent = to_intent(target, pf.cash, pf.qty, open_, pending.decision_bar, open_time,
                                   1 if reason == "halted: flatten" else 0, reason)
                if intent is not None:
                    order_id = intent.client_order_id
                    execute_intent(rt, intent)
                    submit_us = (ns() - t0) // 1000
        t1 = ns()

        # mark
        pf.price = close
        cash, qty = pf.cash, pf.qty
        equity = cash + qty * close
        on_mark(equity, open_time)
        drawdown = risk.drawdown
        if drawdown >= dd_threshold or rt.drawdown_alert_on:
            alerts.check_drawdown(drawdown, equity, risk.peak_equity)
            rt.drawdown_alert_on = alerts.is_active("DRAWDOWN")
        t2 = ns()

        # features
        row = update(close, high, low, volume, open_time)
        if window is not None:
            window.push(row)
        if drift_update is not None:
            psi = drift_update(row)
            if psi is not None:
                record_drift(rt, open_time, psi)
        t3 = ns()

        # policy (from TradingEnv's first decision bar: a full window of valid features)
        weight = qty * close / equity if equity > 0.0 else 0.0
        wanted = None
        if features.count >= ready_count:
            if act_row is not None:
                wanted = act_row(row, weight)
            else:
                obs = None if window is None else window.observation(weight, drawdown)
                wanted = act(make_input(features=row, observation=obs, position_weight=weight, equity=equity,
                                        drawdown=drawdown, open_time=open_time))
        t4 = ns()

        # risk
        reason = "warm-up"
        if wanted is not None:
            if not -_INF < wanted < _INF:  # NaN or +-inf
                reason = "policy: not a number"
            else:
                now = close_time + 1 if clock is None else clock()
                approved, reason = approve(wanted, weight, close_time, now)
                if approved is not None:
                    pending.target = approved
                    pending.decision_bar = open_time
                    pending.reason = reason
                    if at_decision:  # a venue: the order leaves now, at the decision (its task sends it)
                        order_id = submit_at_decision(rt, close, close_time)
                        if order_id is not None:
                            submit_us = (ns() - t0) // 1000
                if reason[0] == "s":  # "stale: ..."
                    alerts.stale(open_time, (now - close_time) / 1000, stale_ms / 1000)
                    rt.stale_alert_on = True
                elif rt.stale_alert_on:
                    alerts.fresh()
                    rt.stale_alert_on = False
        t5 = ns()

        # state: committed in groups, atomically with the fills (see state.py)
        if rt.first_bar is None:
            rt.first_bar = open_time
        rt.last_bar = open_time
        bars = counters.bars = counters.bars + 1
        if bars - counters.committed >= commit_every or (order_id is not None and external):
            rt.commit()
        t6 = ns()

        # metrics
        last = counters.last_metrics_us
        metrics_bar(open_time, close, equity, pf.cash, pf.qty, equity - initial, drawdown, risk.state, reason,
                    pending.target, order_id,
                    ((t1 - t0) // 1000, (t2 - t1) // 1000, (t3 - t2) // 1000, (t4 - t3) // 1000, (t5 - t4) // 1000,
                     (t6 - t5) // 1000, last),
                    (t6 - t0) // 1000 + last, submit_us)
        counters.last_metrics_us = (ns() - t6) // 1000

    return process


def record_drift(rt: Runtime, bar: int, psi: dict[str, float]) -> None:
    """PSI per feature into metrics.jsonl; FEATURE_DRIFT for each feature past the threshold."""
    drift = rt.drift
    rt.parts.metrics.record({"drift_bar": bar, "psi": {k: round(v, 6) for k, v in psi.items()}})
    for name, value in psi.items():
        if value > drift.threshold:
            rt.parts.alerts.feature_drift(name, value, drift.threshold)
        else:
            rt.parts.alerts.drift_cleared(name)


def submit_at_decision(rt: Runtime, price: float, close_time: int) -> str | None:
    """A venue broker's order for the pending decision, sized at the decision bar's close (the
    next bar's open is not known yet), committed, then handed to the broker's task. Nothing while
    an earlier order is not final: the decision stays pending and the next bar's replaces it."""
    parts, pending = rt.parts, rt.pending
    broker = parts.broker
    if broker.busy:
        return None
    target, pending.target = pending.target, None
    pf = parts.portfolio
    intent = parts.orders.target_to_intent(target, pf.cash, pf.qty, price, pending.decision_bar, close_time + 1,
                                           1 if pending.reason == "halted: flatten" else 0, pending.reason)
    if intent is None:
        return None
    state, cid = parts.state, intent.client_order_id
    if state.order_exists(cid):  # this bar was decided before a restart: that order is being resolved
        log.warning("order %s is already in the ledger; not sending it again", cid)
        return None
    state.record_intent(intent.seq, cid, intent.decision_bar, intent.exec_bar, intent.leg, intent.qty,
                        intent.target, intent.ref_price, intent.reason)
    broker.submit(intent)
    return cid


def execute_intent(rt: Runtime, intent: Any) -> None:
    """Write-ahead log, then the broker, then the fill into the books."""
    state, cid = rt.parts.state, intent.client_order_id
    recovering = rt.recovering.pop(cid, None) if rt.recovering else None
    try:
        if recovering is not None:  # committed before a crash: resolve it, never submit it again
            log.warning("order %s was logged before a restart; resolving it without resubmitting", cid)
            fill = rt.parts.broker.recover(intent)
        else:
            state.record_intent(intent.seq, cid, intent.decision_bar, intent.exec_bar, intent.leg, intent.qty,
                                intent.target, intent.ref_price, intent.reason)
            fill = rt.parts.broker.submit(intent)
    except OrderRejected as exc:
        state.set_order_status(cid, "REJECTED", detail=str(exc))
        rt.counters.rejected += 1
        rt.parts.alerts.order_rejected(cid, str(exc))
        return
    if fill is None:  # accepted, not filled yet (venue brokers): the fill arrives later
        return
    pf = rt.parts.portfolio
    pf.apply(fill)
    rt.parts.risk.on_fill(fill.notional, intent.exec_bar)
    state.set_order_status(cid, "FILLED", filled_qty=abs(fill.qty))
    state.record_fill(intent.seq, intent.exec_bar, fill.qty, fill.price, fill.notional, fill.fee, pf.cash, pf.qty)


# ---- the asyncio consumer -------------------------------------------------------------------------

async def _feed(rt: Runtime, queue: asyncio.Queue[MarketEvent]) -> None:
    try:
        await rt.parts.source.run(queue)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the consumer re-raises it after committing what it has
        await queue.put(EndOfStream("source failed", error=exc))


async def consume(rt: Runtime, queue: asyncio.Queue[MarketEvent],
                  status: Callable[[dict[str, Any]], None] | None = None, status_every: float = 0.5) -> None:
    """Take events until the source ends, a stop is requested or --max-bars is reached.
    Commits whenever the queue runs dry (a live stream: after every bar) and at the end."""
    next_status = time.monotonic() + status_every
    metrics = rt.parts.metrics
    # the Prometheus textfile during the run too (rate-limited by the logger), not only at the end
    watch = status is not None or metrics.prom_file is not None
    try:
        while not rt.done and not rt.stop_requested and rt.bars_run < rt.max_bars:
            if queue.empty() and rt.uncommitted:
                rt.commit()
            event = await queue.get()
            process_market_event(rt, event)
            if watch and time.monotonic() >= next_status:
                snap = rt.snapshot()
                if status is not None:
                    status(snap)
                metrics.maybe_prometheus({**snap, "bars": rt.bars_run})
                next_status = time.monotonic() + status_every
    finally:
        rt.commit_if_clean()


async def run_async(rt: Runtime, status: Callable[[dict[str, Any]], None] | None = None) -> None:
    queue: asyncio.Queue[MarketEvent] = asyncio.Queue(maxsize=rt.queue_items)
    loop = asyncio.get_running_loop()

    def on_signal(signum: int, _frame: Any) -> None:
        # Finish the current bar, commit, stop. A second Ctrl-C interrupts at once.
        rt.stop_requested = signum
        signal.signal(signal.SIGINT, signal.default_int_handler)
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_wake, queue)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    gap_filler = rt.parts.gap_filler
    gap_filler.attach(queue)
    feeder = timer = None
    try:
        if rt.live is not None:  # signed REST, the user stream, the start-up reconciliation: before any bar
            await rt.live.start(rt, queue)
            rt.commit()
        if rt.clock is not None:  # paper/live: what closed since the last bar (a restart, the warm-up fetch) first
            gap_filler.request_fill(rt.clock())
        feeder = asyncio.create_task(_feed(rt, queue))
        timer = loop.call_later(rt.duration_s, _time_up, rt, queue) if rt.duration_s else None
        await consume(rt, queue, status)
        if rt.live is not None:  # orders sent at the last decisions: their outcome before leaving
            await rt.live.drain(rt, queue)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if rt.recorder is not None:  # the stream's last candles into the store (merged at most every minute)
            rt.recorder.flush(force=True)
        if timer is not None:
            timer.cancel()
        gap_filler.cancel()
        rt.stream.close()
        # bounded: a socket that lost its cancel (aio.py) must not hold the exit; run_bounded abandons it
        if feeder is not None and not await stop_task(feeder, FEEDER_STOP_S):
            log.warning("the market source did not stop within %g s; abandoning it", FEEDER_STOP_S)
        if rt.live is not None:
            await rt.live.aclose()
        closer = getattr(gap_filler.fetcher, "aclose", None)
        if closer is not None:
            await bounded(closer(), 5.0)


def _time_up(rt: Runtime, queue: asyncio.Queue[MarketEvent]) -> None:
    rt.done = True   # --duration: finish the current bar, commit, stop
    _wake(queue)


def _wake(queue: asyncio.Queue[MarketEvent]) -> None:
    with contextlib.suppress(asyncio.QueueFull):
        queue.put_nowait(Wakeup())


def run_runtime(rt: Runtime, status: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Run the loop to the end of the source (or a stop) in a fresh event loop. Live mode's
    python-binance sockets can ignore a cancel while reconnecting: their leftovers are abandoned
    after a bounded wait instead of holding the exit."""
    if rt.live is None:
        asyncio.run(run_async(rt, status))
        return
    from coin_cli.integrations.binance.user_stream_service import run_bounded

    run_bounded(run_async(rt, status))
