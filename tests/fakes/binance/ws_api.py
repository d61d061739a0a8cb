"""The fake's WebSocket API `/ws-api/v3`: the user data stream as 2026 Binance serves it.

Requests `{"id","method","params"}` answer `{"id","status","result"|"error"}`. Methods:
`userDataStream.subscribe.signature` (HMAC signature checked as account.verify_ws), `userDataStream.
unsubscribe` (one id or all; each ends with an eventStreamTerminated), `session.subscriptions`,
`ping`, `time`. Events go to every subscription wrapped `{"subscriptionId": N, "event": {...}}`, in
order (one queue per connection). `fake.ws_api` also carries the faults and on-demand events.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.binance.account import get_account, verify_ws
from tests.fakes.binance.orders import d8
from tests.fakes.binance.server import CONTROL_ACTIONS, MODULES, ApiError, FakeBinance, dumps


@dataclass
class Session:
    id: int
    ws: web.WebSocketResponse
    request: web.Request
    queue: asyncio.Queue[str | tuple[str, Any]] = field(default_factory=asyncio.Queue)
    subscriptions: list[int] = field(default_factory=list)
    next_subscription: itertools.count = field(default_factory=itertools.count)


class WsApi:
    """`fake.ws_api`: sessions, the events sent, and the WS-API faults."""

    def __init__(self, fake: FakeBinance):
        self.fake = fake
        self.sessions: list[Session] = []
        self.connects = 0
        self.sent_events: list[dict[str, Any]] = []    # every event broadcast (unwrapped), in order
        self.muted = False                              # True: events are logged but not sent
        self.requests: list[dict[str, Any]] = []       # every request frame received
        self._ids = itertools.count(1)

    # ---- events ---------------------------------------------------------------------------------
    def broadcast(self, event: dict[str, Any]) -> None:
        self.sent_events.append(event)
        if self.muted:  # a stalled stream: the socket stays up, the events are lost
            return
        for session in list(self.sessions):
            for sid in session.subscriptions:
                session.queue.put_nowait(dumps({"subscriptionId": sid, "event": event}))

    def send_event(self, event: dict[str, Any]) -> None:
        """Any event (listStatus, externalLockUpdate, ...) to every subscription; thread-safe."""
        self.fake._call_in_loop(lambda: self.broadcast(event))

    def external_lock_update(self, asset: str, delta: str) -> None:
        now = self.fake.server_time_ms()
        self.send_event({"e": "externalLockUpdate", "E": now, "a": asset, "d": d8(Decimal(delta)), "T": now})

    def list_status(self, symbol: str) -> None:
        now = self.fake.server_time_ms()
        self.send_event({"e": "listStatus", "E": now, "s": symbol, "g": 2, "c": "OCO", "l": "EXEC_STARTED",
                         "L": "EXECUTING", "r": "NONE", "C": "F4QN4G8DlFATFlIUQ0cjdD", "T": now,
                         "O": [{"s": symbol, "i": 17, "c": "AJYsMjErWJesZvqlJCTUgL"},
                               {"s": symbol, "i": 18, "c": "bfYPSQdLoqAJeNrOr9adzq"}]})

    def balance_update(self, asset: str, delta: str) -> None:
        """A deposit (delta > 0) or withdrawal: the balance changes, balanceUpdate + outboundAccountPosition."""
        def apply() -> None:
            account = get_account(self.fake)
            account.move(asset, free=Decimal(delta))
            now = self.fake.server_time_ms()
            account.update_time = now
            self.broadcast({"e": "balanceUpdate", "E": now, "a": asset, "d": d8(Decimal(delta)), "T": now})
            self.fake.orders.emit_position(account, (asset,))
        self.fake._call_in_loop(apply)

    # ---- faults ---------------------------------------------------------------------------------
    def drop(self, mode: str = "abort", code: int = 1000) -> int:
        sessions = list(self.sessions)
        for session in sessions:
            self.fake._call_in_loop(lambda s=session: s.queue.put_nowait((mode, code)))
        return len(sessions)

    def server_shutdown(self) -> int:
        """`{"event":{"e":"serverShutdown",...}}` with no subscriptionId (python-binance drops it)."""
        event = dumps({"event": {"e": "serverShutdown", "E": self.fake.server_time_ms()}})
        for session in list(self.sessions):
            self.fake._call_in_loop(lambda s=session: s.queue.put_nowait(event))
        return len(self.sessions)

    def terminate_streams(self) -> int:
        """eventStreamTerminated to every subscription, which then ends (as after a revoked key)."""
        count = 0
        for session in list(self.sessions):
            count += len(session.subscriptions)
            self.fake._call_in_loop(lambda s=session: self._terminate(s, list(s.subscriptions)))
        return count

    def _terminate(self, session: Session, ids: list[int]) -> None:
        now = self.fake.server_time_ms()
        for sid in ids:
            event = {"e": "eventStreamTerminated", "E": now}
            self.sent_events.append(event)
            session.queue.put_nowait(dumps({"subscriptionId": sid, "event": event}))
            session.subscriptions.remove(sid)

    async def close_all(self) -> None:
        for session in list(self.sessions):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(session.ws.close(code=1001, message=b"fake Binance stopping"), 1.0)

    # ---- connection -----------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=self.fake.heartbeat, autoping=True)
        await ws.prepare(request)
        session = Session(next(self._ids), ws, request)
        self.sessions.append(session)
        self.connects += 1
        sender = asyncio.ensure_future(self._send_loop(session))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    session.queue.put_nowait(dumps(self._answer(session, msg.data)))
        finally:
            if session in self.sessions:
                self.sessions.remove(session)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await sender
        return ws

    async def _send_loop(self, session: Session) -> None:
        while not session.ws.closed:
            item = await session.queue.get()
            if isinstance(item, str):
                await session.ws.send_str(item)
            elif item[0] == "abort":
                if session.request.transport is not None:
                    session.request.transport.abort()
                return
            else:
                await session.ws.close(code=item[1], message=b"fake Binance: closed by a test")
                return

    def _answer(self, session: Session, text: str) -> dict[str, Any]:
        try:
            frame = json.loads(text)
            req_id, method, params = frame.get("id"), frame.get("method"), frame.get("params") or {}
        except (ValueError, AttributeError):
            return {"id": None, "status": 400, "error": {"code": -1000, "msg": "Invalid JSON"}}
        self.requests.append(frame)
        try:
            return {"id": req_id, "status": 200, "result": self._call(session, method, params)}
        except ApiError as exc:
            return {"id": req_id, "status": exc.status, "error": {"code": exc.code, "msg": exc.msg}}

    def _call(self, session: Session, method: str, params: dict[str, Any]) -> Any:
        if method == "userDataStream.subscribe.signature":
            verify_ws(self.fake, params)
            if session.subscriptions:
                raise ApiError(400, -2035, "User Data Stream subscription already active.")
            sid = next(session.next_subscription)
            session.subscriptions.append(sid)
            return {"subscriptionId": sid}
        if method == "userDataStream.unsubscribe":
            wanted = params.get("subscriptionId")
            ids = list(session.subscriptions) if wanted is None else [int(wanted)]
            if any(i not in session.subscriptions for i in ids):
                raise ApiError(400, -2036, "Subscription not found.")
            self._terminate(session, ids)
            return {}
        if method == "session.subscriptions":
            return [{"subscriptionId": sid} for sid in session.subscriptions]
        if method == "ping":
            return {}
        if method == "time":
            return {"serverTime": self.fake.server_time_ms()}
        raise ApiError(400, -1000, f"fake Binance: unknown WS-API method {method!r}")


def install(fake: FakeBinance) -> None:
    api = WsApi(fake)
    fake.ws_api = api
    fake.routes.append(("GET", "/ws-api/v3", api.handle))
    fake.on_stop.append(api.close_all)


CONTROL_ACTIONS.update({
    "ws_api_drop": lambda fake, b: fake.ws_api.drop(b.get("mode", "abort"), int(b.get("code", 1000))),
    "ws_api_shutdown": lambda fake, b: fake.ws_api.server_shutdown(),
    "terminate_streams": lambda fake, b: fake.ws_api.terminate_streams(),
    "user_event": lambda fake, b: fake.ws_api.broadcast(b["event"]),
    "external_lock": lambda fake, b: fake.ws_api.external_lock_update(b["asset"], b["delta"]),
    "list_status": lambda fake, b: fake.ws_api.list_status(b["symbol"]),
    "balance_update": lambda fake, b: fake.ws_api.balance_update(b["asset"], b["delta"]),
    "user_events": lambda fake, b: list(fake.ws_api.sent_events),
    "ws_api_mute": lambda fake, b: setattr(fake.ws_api, "muted", bool(b.get("muted", True))),
})
MODULES["ws_api"] = install
