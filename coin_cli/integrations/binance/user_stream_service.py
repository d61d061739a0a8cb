"""`coin stream user`: the account's user data stream (BinanceUserWS), each event recorded in the run
folder's `events.jsonl` as `{"event_type", "payload"}` and handed to a callback (the command renders
it), until `max_events` exchange events or `duration` seconds.

Markers of our own go through the same path: `stream_down` / `stream_up` (payload `{"detail"}`) and
`resync` when the stream was re-subscribed (events sent meanwhile are not replayed; a reconciliation
re-syncs over REST there). They do not count towards `max_events`. Keys come from the environment
(BINANCE_API_KEY / BINANCE_API_SECRET) and never reach an event, a file or a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from coin_cli.aio import stop_task
from coin_cli.errors import UsageError
from coin_cli.integrations.binance.stream_service import EventRecorder, OnEvent, run_recorded

if TYPE_CHECKING:
    from coin_cli.config import Secrets, Settings
    from coin_cli.runs import Run


def missing_keys(secrets: Secrets) -> list[str]:
    """The Binance key variables not set in the environment."""
    return [name for name, value in (("BINANCE_API_KEY", secrets.binance_api_key),
                                     ("BINANCE_API_SECRET", secrets.binance_api_secret)) if not value]


def require_keys(secrets: Secrets) -> tuple[str, str]:
    """The Binance key pair, or a UsageError (exit 2) naming what is missing."""
    missing = missing_keys(secrets)
    if missing:
        raise UsageError(f"the user data stream needs Binance API keys: {', '.join(missing)} "
                         "not set in the environment")
    return str(secrets.binance_api_key), str(secrets.binance_api_secret)


def stream_user(settings: Settings, run: Run | None = None, *, max_events: int | None = None,
                duration: float | None = None, on_event: OnEvent | None = None,
                secrets: Secrets | None = None) -> dict[str, Any]:
    """Run the user stream until `max_events` events or `duration` seconds; returns the summary."""
    from coin_cli.config import Secrets

    key, secret = require_keys(secrets or Secrets.from_env())
    return run_recorded(lambda emit, state: _stream(settings, emit, key, secret, max_events, duration, state),
                        run, on_event, max_events, duration, runner=run_bounded)


def run_bounded(main: Any, leftover_timeout: float = 2.0) -> Any:
    """asyncio.run, except that tasks left behind (python-binance's socket loops, which can ignore a
    cancel while reconnecting) get `leftover_timeout` seconds after a cancel and are then abandoned."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(main)
    finally:
        leftovers = asyncio.all_tasks(loop)
        for task in leftovers:
            task.cancel()
        if leftovers:
            loop.run_until_complete(asyncio.wait(leftovers, timeout=leftover_timeout))
        with contextlib.suppress(Exception):
            loop.run_until_complete(asyncio.wait_for(loop.shutdown_asyncgens(), leftover_timeout))
        loop.close()


async def _stream(settings: Settings, emit: EventRecorder, key: str, secret: str, max_events: int | None,
                  duration: float | None, state: dict[str, Any]) -> dict[str, Any]:
    from coin_cli.integrations.binance.user_ws import BinanceUserWS, UserStreamEvent
    from coin_cli.runtime.events import EndOfStream, StreamStatus

    source = BinanceUserWS.from_settings(settings.binance, key, secret)
    queue: asyncio.Queue[Any] = asyncio.Queue()
    task = asyncio.create_task(source.run(queue))
    counts: Counter[str] = Counter()
    events = resyncs = downs = 0
    began = time.monotonic()
    stopped = "interrupted"

    def summary() -> dict[str, Any]:
        return {"endpoint": source.endpoint, "stopped": stopped, "events": events,
                "by_type": dict(sorted(counts.items())), "stream_down": downs, "resyncs": resyncs,
                "subscriptions": source.subscriptions, "resubscribe_reasons": list(source.reasons),
                "duration_s": round(time.monotonic() - began, 3)}

    state["summary"] = summary
    try:
        while True:
            remaining = None if duration is None else duration - (time.monotonic() - began)
            if remaining is not None and remaining <= 0:
                stopped = "duration"
                break
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, task}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                if task in done:   # failed at start (unreachable, rejected key): its ExchangeError
                    task.result()
                    stopped = "end of stream"
                    break
                stopped = "duration"
                break
            item = getter.result()
            if isinstance(item, EndOfStream):
                if item.error is not None:
                    raise item.error
                stopped = "end of stream"
                break
            if isinstance(item, StreamStatus):
                downs += 0 if item.up else 1
                emit({"event_type": "stream_up" if item.up else "stream_down", "payload": {"detail": item.detail}})
                continue
            if not isinstance(item, UserStreamEvent):
                continue
            if item.event_type == "resync":
                resyncs += 1
                emit({"event_type": item.event_type, "payload": item.payload})
                continue
            events += 1   # counted before it is shown: an interrupt right after never under-counts
            counts[item.name] += 1
            emit({"event_type": item.event_type, "payload": item.payload})
            if max_events is not None and events >= max_events:
                stopped = "max_events"
                break
    finally:
        await stop_task(task, source.exit_timeout * 3)
    return summary()
