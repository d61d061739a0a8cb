"""`BinanceUserWS`: the account's user data stream over the WebSocket API (binance.md §3-4).

python-binance 1.0.37's `BinanceSocketManager.user_socket()` subscribes with
`userDataStream.subscribe.signature` over `client.ws_api` (the REST listenKey stream is retired).
What it does NOT do, and this class adds:

- re-subscribe after a WS-API reconnect: python-binance reconnects the socket, hands the user socket
  two in-band error dicts and then stays silent (the new connection has no subscription). On an error
  dict the user socket is exited and a new one opened; `eventStreamTerminated` (the subscription
  ended) and `serverShutdown` do the same;
- `serverShutdown` has no subscriptionId, so python-binance drops it ("unknown message"): the
  `WebsocketAPI` subclass below routes such bare events to the user socket's queue;
- exits that hang (closing while reconnecting can take > 30 s): every exit is under a timeout.

Each re-subscription puts `StreamStatus(up=False)`, then `StreamStatus(up=True)` and a
`UserStreamEvent("resync", ...)` marker on the queue: events sent while nothing was subscribed are
not replayed by Binance, a consumer re-syncs over REST (orders, trades, account) at the marker.
Keys never appear in a message: every error text is redacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from coin_cli.aio import TIMED_OUT, bounded, within
from coin_cli.config import redact_values
from coin_cli.errors import ExchangeError
from coin_cli.runtime.events import EndOfStream, StreamStatus

log = logging.getLogger("coin.binance.user_ws")

EVENT_TYPES = ("outboundAccountPosition", "executionReport", "balanceUpdate")
RESUBSCRIBE_ON = ("eventStreamTerminated", "serverShutdown")
RESYNC = "resync"


@dataclass(frozen=True)
class UserStreamEvent:
    """One user-stream event: `event_type` is outboundAccountPosition, executionReport,
    balanceUpdate, other (its own name is `payload["e"]`), or `resync` (a marker of ours);
    `payload` is the exchange's event as received, unwrapped."""

    event_type: str
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The exchange's own event name (`e`), or the marker's type."""
        return str(self.payload.get("e", self.event_type))


def unwrap(message: dict[str, Any]) -> dict[str, Any]:
    """The event inside `{"subscriptionId","event"}` (WS API) or `{"stream","data"}` (combined)."""
    if isinstance(message.get("event"), dict) and ("subscriptionId" in message or len(message) == 1):
        return message["event"]
    if "stream" in message and isinstance(message.get("data"), dict):
        return message["data"]
    return message


def classify(message: dict[str, Any]) -> UserStreamEvent:
    payload = unwrap(message)
    name = payload.get("e")
    return UserStreamEvent(name if name in EVENT_TYPES else "other", payload)


def is_error_dict(message: Any) -> bool:
    """python-binance's in-band error (`{"e":"error","type":...,"m":...}`) after a drop."""
    return isinstance(message, dict) and message.get("e") == "error"


def _shutdown_aware_ws_api(url: str) -> Any:
    """python-binance's WebsocketAPI that hands bare `{"event": {...}}` frames (serverShutdown, no
    subscriptionId) to every subscription queue instead of dropping them."""
    from binance.ws.websocket_api import WebsocketAPI

    class ShutdownAwareWebsocketAPI(WebsocketAPI):
        def _handle_message(self, msg: Any) -> Any:
            if isinstance(msg, str) and '"event"' in msg and '"subscriptionId"' not in msg:
                with contextlib.suppress(ValueError):
                    frame = json.loads(msg)
                    if isinstance(frame, dict) and isinstance(frame.get("event"), dict) and "id" not in frame:
                        for queue in list(self._subscription_queues.values()):
                            with contextlib.suppress(asyncio.QueueFull):
                                queue.put_nowait(frame["event"])
                        return None
            return super()._handle_message(msg)

    return ShutdownAwareWebsocketAPI(url=url)


class BinanceUserWS:
    """The user data stream as `UserStreamEvent`s on an asyncio.Queue, re-subscribed when it breaks.

    `run(queue)` connects (REST ping/time for the clock, then the WS-API subscription), raises an
    ExchangeError naming the endpoint when either is unreachable at start, then forwards events until
    cancelled. Later failures re-subscribe with backoff; `max_resubscribe_failures` in a row end the
    stream with `EndOfStream(error=ExchangeError)` on the queue."""

    def __init__(self, api_url: str, ws_api_url: str, api_key: str, api_secret: str, *,
                 timeout: float = 10.0, exit_timeout: float = 3.0, reconnect_base: float = 0.5,
                 reconnect_cap: float = 30.0, max_resubscribe_failures: int = 5) -> None:
        self.api_url, self.ws_api_url = api_url, ws_api_url
        self._keys = (api_key, api_secret)
        self.timeout, self.exit_timeout = timeout, exit_timeout
        self.reconnect_base, self.reconnect_cap = reconnect_base, reconnect_cap
        self.max_resubscribe_failures = max_resubscribe_failures
        self.subscriptions = 0          # successful subscriptions (1 + re-subscriptions)
        self.reasons: list[str] = []    # why each re-subscription happened
        self._client: Any = None

    @classmethod
    def from_settings(cls, binance: Any, api_key: str, api_secret: str) -> BinanceUserWS:
        return cls(binance.api_url, binance.ws_api_url, api_key, api_secret, timeout=binance.timeout,
                   reconnect_base=binance.reconnect_base, reconnect_cap=binance.reconnect_cap)

    @property
    def endpoint(self) -> str:
        return self.ws_api_url

    def _redact(self, text: str) -> str:
        return redact_values(text, self._keys)

    async def run(self, queue: asyncio.Queue[Any]) -> None:
        from binance import BinanceSocketManager

        from coin_cli.integrations.binance.rest import client_class

        cls = client_class(self.api_url)
        try:
            client = await within(cls.create(*self._keys, requests_params={"timeout": self.timeout}), self.timeout)
            if client is TIMED_OUT:
                raise TimeoutError(f"no answer in {self.timeout:g} s")
            self._client = client
        except Exception as exc:
            raise ExchangeError(f"cannot reach Binance REST at {self.api_url}: "
                                f"{self._redact(str(exc) or type(exc).__name__)}") from None
        self._client.ws_api = _shutdown_aware_ws_api(self.ws_api_url)
        self._client.ws_api.TIMEOUT = self.timeout
        manager = BinanceSocketManager(self._client)
        try:
            socket = await self._subscribe(manager, first=True)
            failures = 0
            while True:
                reason = await self._forward(socket, queue)
                self.reasons.append(reason)
                queue.put_nowait(StreamStatus(False, reason))
                await self._exit(socket)
                while True:
                    await asyncio.sleep(min(self.reconnect_cap, self.reconnect_base * 2 ** failures))
                    try:
                        socket = await self._subscribe(manager)
                        failures = 0
                        break
                    except ExchangeError as exc:
                        failures += 1
                        if failures >= self.max_resubscribe_failures:
                            queue.put_nowait(EndOfStream("user stream lost", error=exc))
                            return
                queue.put_nowait(StreamStatus(True, f"re-subscribed after {reason}"))
                queue.put_nowait(UserStreamEvent(RESYNC, {"reason": reason, "subscription": self.subscriptions}))
        finally:
            await self.close()

    async def _subscribe(self, manager: Any, first: bool = False) -> Any:
        socket = manager.user_socket()
        try:
            if await within(socket.__aenter__(), self.timeout + self.exit_timeout) is TIMED_OUT:
                raise TimeoutError("no subscription in time")
        except Exception as exc:
            await self._exit(socket)
            detail = self._redact(str(exc) or type(exc).__name__)
            raise ExchangeError(f"cannot subscribe to the user data stream at {self.ws_api_url}: {detail}") from None
        self.subscriptions += 1
        log.info("user data stream subscribed (%d)", self.subscriptions)
        return socket

    async def _forward(self, socket: Any, queue: asyncio.Queue[Any]) -> str:
        """Put events on the queue until the subscription breaks; returns why."""
        while True:
            # python-binance's recv loop can swallow a cancel: cancelling run() must not wait for it
            try:
                message = await within(socket.recv(), None)
            except Exception as exc:
                return f"socket closed ({type(exc).__name__})"
            if is_error_dict(message):
                # python-binance sends two error dicts per drop, and the second can reach the NEW
                # socket: the server's list of subscriptions says whether this one still lives
                if await self._still_subscribed(socket):
                    log.info("stale error dict ignored (%s): subscription alive", message.get("type"))
                    continue
                return f"ws-api dropped ({message.get('type', 'error')})"
            if not isinstance(message, dict):
                continue
            event = classify(message)
            queue.put_nowait(event)
            if event.name in RESUBSCRIBE_ON:
                return event.name

    async def _still_subscribed(self, socket: Any) -> bool:
        """Once the WS API is connected again: is this socket's subscription on the server's list?"""
        from binance.ws.constants import WSListenerState

        ws_api = self._client.ws_api
        for _ in range(int(self.timeout / 0.1)):
            if ws_api.ws_state == WSListenerState.STREAMING:
                break
            await asyncio.sleep(0.1)
        try:
            listed = await within(self._client._ws_api_request(
                "session.subscriptions", signed=False, params={"id": str(uuid.uuid4())}), self.timeout)
        except Exception:  # cannot ask: treat as gone, a new subscription follows
            return False
        sid = getattr(socket, "_subscription_id", None)
        if listed is TIMED_OUT:
            return False
        return any(isinstance(item, dict) and item.get("subscriptionId") == sid for item in listed or [])

    async def _exit(self, socket: Any) -> None:
        """Leave a user socket (it unsubscribes, which may fail or hang): never more than exit_timeout."""
        await bounded(socket.__aexit__(None, None, None), self.exit_timeout)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await bounded(client.close_connection(), self.exit_timeout)
