"""`coin stream market`: closed klines of one symbol from MarketDataWS, recorded in the run folder's
`events.jsonl` and handed to a callback (the command renders them), until `max_events` klines or
`duration` seconds.

Each kline is shown once, in order: a duplicate or an older kline is dropped and counted; after a
reconnect (StreamStatus up) and whenever a kline arrives past a hole, the missed bars are fetched
over REST (closed ones only) and emitted first, marked `gap_filled`. Stream down/up are events too.
A market unreachable at start (REST or the socket) is an ExchangeError naming the endpoint (exit 4).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from coin_cli.aio import stop_task
from coin_cli.errors import UsageError

if TYPE_CHECKING:
    from coin_cli.config import Settings
    from coin_cli.runs import Run
    from coin_cli.runtime.events import Candle

OnEvent = Callable[[dict[str, Any]], None]


class EventRecorder:
    """events.jsonl (one JSON object per line, flushed at once: a killed run keeps what it showed)."""

    def __init__(self, run: Run | None, on_event: OnEvent | None) -> None:
        self._file = open(run.path("events.jsonl"), "a", encoding="utf-8") if run is not None else None  # noqa: SIM115
        self._on_event = on_event

    def __call__(self, event: dict[str, Any]) -> None:
        if self._file is not None:
            self._file.write(json.dumps(event, separators=(",", ":")) + "\n")
            self._file.flush()
        if self._on_event is not None:
            self._on_event(event)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def kline_event(symbol: str, interval: str, candle: Candle, gap_filled: bool) -> dict[str, Any]:
    from coin_cli.data.schema import ms_to_iso

    return {"event": "kline", "symbol": symbol, "interval": interval, "open_time": candle.open_time,
            "time": ms_to_iso(candle.open_time), "open": candle.open, "high": candle.high, "low": candle.low,
            "close": candle.close, "volume": candle.volume, "close_time": candle.close_time,
            "gap_filled": gap_filled}


def run_recorded(stream: Callable[[EventRecorder, dict[str, Any]], Any], run: Run | None,
                 on_event: OnEvent | None, max_events: int | None, duration: float | None,
                 runner: Callable[[Any], Any] = asyncio.run) -> dict[str, Any]:
    """The frame both `coin stream` commands share: check the bounds, record every event, and on
    Ctrl-C/SIGTERM return the summary so far (the run marked interrupted, exit 130/143).
    `stream(recorder, state)` is the coroutine; it puts its summary function in `state["summary"]`."""
    if max_events is not None and max_events < 1:
        raise UsageError(f"--max-events must be at least 1, got {max_events}")
    if duration is not None and duration <= 0:
        raise UsageError(f"--duration must be positive, got {duration:g}")
    from coin_cli.errors import ExitCode, Terminated

    recorder = EventRecorder(run, on_event)
    state: dict[str, Any] = {}
    try:
        return runner(stream(recorder, state))
    except KeyboardInterrupt as exc:  # what was shown is recorded; say so
        if "summary" not in state:
            raise
        terminated = isinstance(exc, Terminated)
        if run is not None:
            run.set_outcome("interrupted", ExitCode.TERMINATED if terminated else ExitCode.INTERRUPTED)
        return {**state["summary"](), "stopped": "SIGTERM" if terminated else "SIGINT"}
    finally:
        recorder.close()


def stream_market(settings: Settings, run: Run | None = None, *, max_events: int | None = None,
                  duration: float | None = None, on_event: OnEvent | None = None) -> dict[str, Any]:
    """Run the stream until `max_events` klines or `duration` seconds (at least one must be given,
    or it runs until interrupted); returns the summary."""
    return run_recorded(lambda emit, state: _stream(settings, emit, max_events, duration, state),
                        run, on_event, max_events, duration)


async def _stream(settings: Settings, emit: EventRecorder, max_events: int | None,
                  duration: float | None, state: dict[str, Any]) -> dict[str, Any]:
    from coin_cli.data.schema import interval_ms, ms_to_iso, normalize_interval
    from coin_cli.integrations.binance.market_ws import MarketDataWS
    from coin_cli.integrations.binance.rest import BinanceRESTClient
    from coin_cli.runtime.events import Candle, EndOfStream, StreamStatus

    symbol, interval = settings.data.symbol, normalize_interval(settings.data.interval)
    step = interval_ms(interval)
    counts = {"klines": 0, "live": 0, "gap_filled": 0, "duplicates_dropped": 0, "stream_down": 0}
    last: int | None = None
    first: int | None = None
    began = time.monotonic()
    stopped = "interrupted"

    rest = BinanceRESTClient.from_settings(settings.binance)
    await rest.connect()   # unreachable -> ExchangeError naming binance.api_url (exit 4)
    source = MarketDataWS.from_settings(settings.binance, symbol, interval)
    queue: asyncio.Queue[Any] = asyncio.Queue()
    task = asyncio.create_task(source.run(queue))

    def summary() -> dict[str, Any]:
        return {
            "symbol": symbol, "interval": interval, "stream": source.endpoint, "stopped": stopped, **counts,
            "reconnects": source.reconnects, "reconnect_reasons": dict(source.reasons),
            "first": ms_to_iso(first) if first is not None else None,
            "last": ms_to_iso(last) if last is not None else None,
            "rest_retries": rest.stats.retries, "duration_s": round(time.monotonic() - began, 3),
        }

    state["summary"] = summary

    def show(candle: Candle, gap_filled: bool) -> bool:
        """Emit one kline; True when the event budget is spent."""
        nonlocal last, first
        last = candle.open_time
        first = candle.open_time if first is None else first
        counts["klines"] += 1
        counts["gap_filled" if gap_filled else "live"] += 1
        emit(kline_event(symbol, interval, candle, gap_filled))
        return max_events is not None and counts["klines"] >= max_events

    async def fill(upto_open: int) -> bool:
        """REST klines after `last` with open time <= upto_open, as gap-filled events."""
        if last is None or upto_open <= last:
            return False
        from coin_cli.integrations.binance.rest import KlinePage

        rows = await rest.klines_range(symbol, interval, last + step, upto_open)
        return any(show(c, True) for c in KlinePage(rows, len(rows), 0, None).candles())

    try:
        while True:
            remaining = None if duration is None else duration - (time.monotonic() - began)
            if remaining is not None and remaining <= 0:
                stopped = "duration"
                break
            try:
                item = await asyncio.wait_for(queue.get(), remaining)
            except TimeoutError:
                stopped = "duration"
                break
            if isinstance(item, EndOfStream):
                if item.error is not None:
                    raise item.error
                stopped = "end of stream"
                break
            if isinstance(item, StreamStatus):
                counts["stream_down"] += 0 if item.up else 1
                emit({"event": "stream_up" if item.up else "stream_down", "detail": item.detail,
                      "time": ms_to_iso(rest.server_now_ms())})
                if item.up and await fill(rest.server_now_ms() - step):  # bars closed while down
                    stopped = "max_events"
                    break
                continue
            if not isinstance(item, Candle) or not item.closed:
                continue
            if last is not None and item.open_time <= last:
                counts["duplicates_dropped"] += 1
                continue
            if last is not None and item.open_time > last + step and await fill(item.open_time - step):
                stopped = "max_events"
                break
            if show(item, False):
                stopped = "max_events"
                break
    finally:
        await stop_task(task, 5.0)   # bounded: a socket that lost its cancel must not hold the exit
        await rest.close()
    return summary()
