"""`MarketDataWS`: Binance's kline stream through python-binance's BinanceSocketManager, as a
runtime `MarketSource` (coin_cli/runtime/sources.py).

`await source.run(queue)` puts on the queue:
- `Candle(..., closed=True)` for every CLOSED kline (`k.x`), in the order received (no de-duplication
  and no backfill here: the consumer drops duplicates, E2's GapFiller fills after a reconnect);
- `StreamStatus(up=False, detail)` when the socket is given up, `StreamStatus(up=True, detail)` when a
  new one is streaming again (not for the first connection);
- `EndOfStream(error=ExchangeError)` when the FIRST connection fails `connect_retries` times in a row
  (a market unreachable at start: the error names the endpoint). Later drops retry forever.

python-binance failure modes (binance.md §4) and what is done - every one ends the socket and opens
a NEW one (a new BinanceSocketManager too: its connection cache may hold the old socket):
- in-band `{"e": "error", ...}` dicts (a drop it is reconnecting by itself, without telling anyone);
- `ReadLoopClosed` from recv() after a queue overflow (the read loop died with the messages queued);
- `serverShutdown` events ("reconnect now");
- no message for `stale_after_s` (the watchdog: default two intervals; a stalled socket);
- the socket's age reaching `max_age_s` (a proactive reconnect before Binance's 24 h disconnect);
- closing a socket can hang (> 30 s seen while it reconnects): every exit is under `close_timeout`;
- a cancel lost in `asyncio.wait_for` (Python 3.11, aio.py): every await on python-binance goes
  through aio.py's helpers, so stopping the source always stops it.
Reconnects back off exponentially with jitter (`reconnect_base` .. `reconnect_cap` seconds).

For the gap fill: `last_closed_open_time` is the open time of the newest closed kline received,
`reconnects` counts reconnects, `stats()` returns both with the messages seen.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import TYPE_CHECKING, Any

from coin_cli.aio import TIMED_OUT, bounded, within
from coin_cli.errors import ExchangeError
from coin_cli.runtime.events import Candle, EndOfStream, MarketEvent, StreamStatus

if TYPE_CHECKING:
    from coin_cli.config import BinanceConfig

log = logging.getLogger("coin.binance.market_ws")

DAY_S = 24 * 3600.0
MAX_AGE_S = DAY_S - 15 * 60   # reconnect 15 min before Binance cuts the connection at 24 h


class MarketDataWS:
    """Closed klines of one symbol/interval from Binance's market stream; see the module doc."""

    name = "binance-ws"

    def __init__(self, symbol: str, interval: str, *, stream_url: str, api_url: str,
                 stale_after_s: float | None = None, connect_retries: int = 5, reconnect_base: float = 0.5,
                 reconnect_cap: float = 30.0, close_timeout: float = 3.0, connect_timeout: float = 10.0,
                 max_age_s: float = MAX_AGE_S, max_queue_size: int = 1000) -> None:
        from coin_cli.data.schema import interval_ms

        self.symbol, self.interval = symbol.upper(), interval
        self.stream_url = stream_url if stream_url.endswith("/") else stream_url + "/"
        self.api_url = api_url
        self.interval_s = interval_ms(interval) / 1000.0
        self.stale_after_s = stale_after_s if stale_after_s else 2 * self.interval_s
        self.connect_retries = connect_retries
        self.reconnect_base, self.reconnect_cap = reconnect_base, reconnect_cap
        self.close_timeout, self.connect_timeout = close_timeout, connect_timeout
        self.max_age_s = max_age_s
        self.max_queue_size = max_queue_size
        self.reconnects = 0
        self.last_closed_open_time: int | None = None
        self.messages = 0
        self.closed_klines = 0
        self.reasons: dict[str, int] = {}
        self.connected = False

    @classmethod
    def from_settings(cls, binance: BinanceConfig, symbol: str, interval: str, **kw: Any) -> MarketDataWS:
        return cls(symbol, interval, stream_url=binance.stream_url, api_url=binance.api_url,
                   stale_after_s=binance.stale_after, connect_retries=binance.max_retries,
                   reconnect_base=binance.reconnect_base, reconnect_cap=binance.reconnect_cap, **kw)

    @property
    def stream_name(self) -> str:
        return f"{self.symbol.lower()}@kline_{self.interval}"

    @property
    def endpoint(self) -> str:
        return f"{self.stream_url}ws/{self.stream_name}"

    def describe(self) -> str:
        return f"Binance kline stream {self.endpoint} (closed klines; watchdog {self.stale_after_s:g} s)"

    def stats(self) -> dict[str, Any]:
        return {"reconnects": self.reconnects, "messages": self.messages, "closed_klines": self.closed_klines,
                "last_closed_open_time": self.last_closed_open_time, "reconnect_reasons": dict(self.reasons)}

    # ---- the loop -------------------------------------------------------------------------------
    async def run(self, queue: asyncio.Queue[MarketEvent]) -> None:
        from coin_cli.integrations.binance.rest import client_class

        client = client_class(self.api_url)()   # no network: the socket manager only needs its settings
        client.https_proxy = getattr(client, "https_proxy", None)
        failures, first = 0, True
        try:
            while True:
                socket = await self._open(client)
                if socket is None:
                    failures += 1
                    if first and failures > self.connect_retries:
                        error = ExchangeError(f"{self.endpoint}: cannot open the market stream after "
                                              f"{self.connect_retries} retries")
                        await queue.put(EndOfStream(str(error), error=error))
                        return
                    await asyncio.sleep(self._backoff(failures - 1))
                    continue
                if not first:
                    await queue.put(StreamStatus(up=True, detail=f"reconnected ({self.reconnects} so far)"))
                first, failures = False, 0
                self.connected = True
                try:
                    reason = await self._read(socket, queue)
                finally:
                    self.connected = False
                    await self._close(socket)
                self.reconnects += 1
                key = reason.split(":")[0]
                self.reasons[key] = self.reasons.get(key, 0) + 1
                log.warning("%s: %s; reconnecting", self.endpoint, reason)
                await queue.put(StreamStatus(up=False, detail=reason))
                await asyncio.sleep(self._backoff(0))
        finally:
            await bounded(client.close_connection(), self.close_timeout)

    async def _open(self, client: Any) -> Any:
        from binance import BinanceSocketManager

        manager = BinanceSocketManager(client, max_queue_size=self.max_queue_size)
        manager.STREAM_URL = self.stream_url
        socket = manager.kline_socket(self.symbol, interval=self.interval)
        try:
            if await within(socket.__aenter__(), self.connect_timeout) is TIMED_OUT:
                raise TimeoutError(f"no connection in {self.connect_timeout:g} s")
        except Exception as exc:  # refused, DNS, handshake, timeout: try again (with backoff)
            log.warning("%s: cannot connect (%s: %s)", self.endpoint, type(exc).__name__, exc)
            await self._close(socket)
            return None
        return socket

    async def _read(self, socket: Any, queue: asyncio.Queue[MarketEvent]) -> str:
        """Forward closed klines until the socket must be replaced; returns why."""
        from binance.exceptions import ReadLoopClosed

        opened = time.monotonic()
        while True:
            age = time.monotonic() - opened
            if age >= self.max_age_s:
                return f"max age: {age:.0f} s on one connection (Binance disconnects at 24 h)"
            wait = min(self.stale_after_s, self.max_age_s - age)
            try:
                msg = await within(socket.recv(), wait)
            except ReadLoopClosed as exc:
                return f"read loop closed: {exc} (queue overflow?)"
            except Exception as exc:  # python-binance raised instead of reporting in-band
                return f"error: {type(exc).__name__}: {exc}"
            if msg is TIMED_OUT:
                if time.monotonic() - opened >= self.max_age_s:
                    continue
                return f"stale: no message for {self.stale_after_s:g} s"
            self.messages += 1
            if not isinstance(msg, dict):
                continue
            if "stream" in msg and isinstance(msg.get("data"), dict):  # combined form
                msg = msg["data"]
            kind = msg.get("e")
            if kind == "error":
                return f"error: {msg.get('type', '?')}: {msg.get('m', '')}".rstrip(": ")
            if kind == "serverShutdown":
                return "serverShutdown: Binance asks to reconnect"
            if kind != "kline":
                continue
            candle = _closed_candle(msg.get("k"))
            if candle is None:
                continue
            self.closed_klines += 1
            if self.last_closed_open_time is None or candle.open_time > self.last_closed_open_time:
                self.last_closed_open_time = candle.open_time
            await queue.put(candle)

    async def _close(self, socket: Any) -> None:
        await bounded(socket.__aexit__(None, None, None), self.close_timeout)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.reconnect_cap, self.reconnect_base * 2**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def _closed_candle(k: Any) -> Candle | None:
    """A `k` payload -> Candle when the kline is closed (`x` true), else None. Malformed: None."""
    if not isinstance(k, dict) or k.get("x") is not True:
        return None
    try:
        return Candle(int(k["t"]), float(k["o"]), float(k["h"]), float(k["l"]), float(k["c"]), float(k["v"]),
                      int(k["T"]), closed=True)
    except (KeyError, TypeError, ValueError):
        log.warning("malformed kline payload dropped: %r", k)
        return None
