"""Market WebSocket streams of the fake: `/ws/<symbol>@kline_<interval>` (raw payloads) and
`/stream?streams=a/b` (wrapped `{"stream", "data"}`), payloads as Binance sends them (ws_kline.json).

Each connection is live from the moment it opens, like Binance: nothing from before is replayed.
When a bar of the series closes on the fake's clock (`fake.server_time_ms()`, the same clock as
/api/v3/time), the connection sends it with `k.x` true; between closes it sends open-kline updates
(`k.x` false) every `update_ms` (Binance: 2000 ms; the fake sends them every 500 ms on `1s` so a 1s
stream has one between two closes). Faults (faults.py) act per connection. The server pings every
`fake.heartbeat` seconds (aiohttp heartbeat) and drops a client that does not pong.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.binance.faults import StreamFaults
from tests.fakes.binance.server import MODULES, FakeBinance, dumps

TICK_S = 0.05          # longest sleep of a sender: how soon a fault takes effect
SENT_LOG_LIMIT = 100_000


def kline_event(series: Any, row: list[Any], closed: bool, event_ms: int) -> dict[str, Any]:
    """The stream payload of one REST kline row (same values: REST and stream agree)."""
    t = int(row[0])
    index = (t - series.start_ms) // series.step
    first_trade = index * 100 + 1
    k = {"t": t, "T": int(row[6]), "s": series.symbol, "i": series.interval, "f": first_trade,
         "L": first_trade + int(row[8]) - 1, "o": row[1], "c": row[4], "h": row[2], "l": row[3], "v": row[5],
         "n": int(row[8]), "x": closed, "q": row[7], "V": row[9], "Q": row[10], "B": "0"}
    return {"e": "kline", "E": event_ms, "s": series.symbol, "k": k}


@dataclass
class Subscription:
    name: str                     # e.g. btcusdt@kline_1s
    symbol: str
    interval: str
    last_closed: int | None = None  # open time of the last closed bar sent (or skipped)
    next_update_ms: int = 0


@dataclass
class StreamConnection:
    id: int
    path: str
    combined: bool
    ws: web.WebSocketResponse
    request: web.Request
    subs: list[Subscription]
    actions: list[tuple[str, Any]] = field(default_factory=list)   # faults queued for the sender
    stalled_until: float | None = None                              # time.monotonic(); inf: until unstall
    held: list[tuple[Subscription, dict[str, Any]]] = field(default_factory=list)  # reordered kline


def parse_stream(name: str) -> Subscription | None:
    symbol, _, kind = name.partition("@")
    if not kind.startswith("kline_"):
        return None
    return Subscription(name, symbol.upper(), kind.removeprefix("kline_").split("@")[0])


class MarketStreams(StreamFaults):
    """`fake.streams`: the open connections, what was sent, and the stream faults (see faults.py)."""

    def __init__(self, fake: FakeBinance):
        super().__init__()
        self.fake = fake
        self.connections: list[StreamConnection] = []
        self.connects = 0                       # connections accepted so far
        self.sent: list[dict[str, Any]] = []    # {"conn", "stream", "t", "x", "E"} per kline sent
        self.update_ms: int | None = None       # open-kline update period; None: Binance's (see module doc)
        self._ids = itertools.count(1)

    # ---- handlers -------------------------------------------------------------------------------
    async def raw(self, request: web.Request) -> web.StreamResponse:
        stream = request.match_info.get("stream")
        return await self._serve(request, [stream] if stream else [], combined=False)

    async def combined(self, request: web.Request) -> web.StreamResponse:
        names = [n for n in request.query.get("streams", "").split("/") if n]
        return await self._serve(request, names, combined=True)

    async def _serve(self, request: web.Request, names: list[str], combined: bool) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=self.fake.heartbeat, autoping=True)
        await ws.prepare(request)
        conn = StreamConnection(next(self._ids), request.path_qs, combined, ws, request,
                                [s for s in map(parse_stream, names) if s is not None])
        self.connections.append(conn)
        self.connects += 1
        sender = asyncio.ensure_future(self._send_loop(conn))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_request(conn, msg.data)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await sender
            if conn in self.connections:
                self.connections.remove(conn)
        return ws

    async def _on_request(self, conn: StreamConnection, text: str) -> None:
        """Live SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS, answered as Binance does."""
        try:
            request = json.loads(text)
            method, req_id = request.get("method"), request.get("id")
        except (ValueError, AttributeError):
            await conn.ws.send_str(dumps({"error": {"code": 2, "msg": "Invalid request"}}))
            return
        params = request.get("params") or []
        result: Any = None
        if method == "SUBSCRIBE":
            conn.subs += [s for s in map(parse_stream, params) if s is not None]
        elif method == "UNSUBSCRIBE":
            conn.subs = [s for s in conn.subs if s.name not in params]
        elif method == "LIST_SUBSCRIPTIONS":
            result = [s.name for s in conn.subs]
        await conn.ws.send_str(dumps({"result": result, "id": req_id}))

    # ---- sending --------------------------------------------------------------------------------
    async def _send_loop(self, conn: StreamConnection) -> None:
        while not conn.ws.closed:
            if await self._run_actions(conn):
                return
            if conn.stalled_until is not None:
                if time.monotonic() < conn.stalled_until:
                    await asyncio.sleep(TICK_S)
                    continue
                conn.stalled_until = None
                for sub in conn.subs:  # a stalled socket's missed bars are gone, as on Binance
                    sub.last_closed = None
            wait_ms = TICK_S * 1000
            for sub in list(conn.subs):
                wait_ms = min(wait_ms, await self._advance(conn, sub))
            await asyncio.sleep(max(wait_ms, 1) / 1000)

    async def _advance(self, conn: StreamConnection, sub: Subscription) -> float:
        """Send what is due on `sub` now; return ms until something else may be due."""
        series = self.fake.state.get("series", {}).get((sub.symbol, sub.interval))
        if series is None:
            return TICK_S * 1000
        now = self.fake.server_time_ms()
        step = series.step
        if sub.last_closed is None:  # live from now on: skip every bar already closed
            done = series.open_times(None, now - step, 1, now)
            sub.last_closed = int(done[-1]) if len(done) else series.start_ms - step
            sub.next_update_ms = now
        for t in series.open_times(sub.last_closed + 1, now - step, 1000, now).tolist():
            row = series.rows([t], now)[0]
            sub.last_closed = t
            await self._send_closed(conn, sub, kline_event(series, row, True, self.fake.server_time_ms()))
            sub.next_update_ms = now + self._update_ms(series)
        current = series.open_times(now - step + 1, now, 1, now)
        if len(current) and now >= sub.next_update_ms:
            row = series.rows(current, now)[0]
            await self._send(conn, sub, kline_event(series, row, False, now))
            sub.next_update_ms = now + self._update_ms(series)
        next_close = (int(current[0]) + step if len(current) else now + step) - now
        return max(0.0, min(next_close, sub.next_update_ms - now))

    def _update_ms(self, series: Any) -> int:
        if self.update_ms is not None:
            return self.update_ms
        return 500 if series.step <= 1000 else 2000

    async def _send_closed(self, conn: StreamConnection, sub: Subscription, event: dict[str, Any]) -> None:
        """A closed kline, through the duplicate / reorder faults."""
        if conn.held:
            held_sub, held_event = conn.held.pop()
            await self._send(conn, sub, event)
            await self._send(conn, held_sub, held_event)
            return
        if self._take("reorder"):
            conn.held.append((sub, event))
            return
        await self._send(conn, sub, event)
        if self._take("duplicate"):
            await self._send(conn, sub, event)

    async def _send(self, conn: StreamConnection, sub: Subscription, event: dict[str, Any]) -> None:
        payload = {"stream": sub.name, "data": event} if conn.combined else event
        await conn.ws.send_str(dumps(payload))
        if len(self.sent) < SENT_LOG_LIMIT:
            self.sent.append({"conn": conn.id, "stream": sub.name, "t": event["k"]["t"], "x": event["k"]["x"],
                              "E": event["E"]})

    async def close_all(self) -> None:
        """At fake.stop(): close every socket (1001 going away) so no handler outlives the fake."""
        for conn in list(self.connections):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.ws.close(code=1001, message=b"fake Binance stopping"), 1.0)


def install(fake: FakeBinance) -> None:
    streams = MarketStreams(fake)
    fake.streams = streams
    fake.routes.append(("GET", "/ws/{stream}", streams.raw))
    fake.routes.append(("GET", "/ws", streams.raw))  # streams added by SUBSCRIBE frames
    fake.routes.append(("GET", "/stream", streams.combined))
    fake.on_stop.append(streams.close_all)


MODULES["streams"] = install
