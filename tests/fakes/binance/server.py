"""The core of the loopback fake Binance Spot REST server: routing, request weight, faults, clock.

Endpoints are added by modules (see `market.py`): `fake.endpoint("GET", "/api/v3/klines", weight=2)`
decorates an async handler `(request, params) -> JSON-able | web.StreamResponse`; the core wraps
every handler with the request log, fault injection and the per-minute weight accounting that puts
`X-MBX-USED-WEIGHT-1M` on each answer and answers 429 (-1003, Retry-After) over the limit, 418
after repeated 429s. Later modules (orders, account, websockets) plug in the same way.

Ways to run it:
- `async with FakeBinance() as fake:` (or `await fake.start()`) in the caller's event loop;
- `with FakeBinance().run_in_thread() as fake:` (own loop in a daemon thread), for code under test
  that calls `asyncio.run` itself, or a `coin` subprocess reaching it over loopback;
- standalone process: `python -m tests.fakes.binance` (see `__main__.py`), driven over HTTP at
  `/_control/*`; `FakeBinanceProcess` wraps that.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.binance.listening import Listening

Handler = Callable[[web.Request, dict[str, str]], Awaitable[Any]]
MINUTE_MS = 60_000


class ApiError(Exception):
    """Raise in a handler for Binance's error shape `{"code": code, "msg": msg}` with `status`."""

    def __init__(self, status: int, code: int, msg: str, headers: dict[str, str] | None = None):
        super().__init__(msg)
        self.status, self.code, self.msg, self.headers = status, code, msg, headers or {}


@dataclass
class Fault:
    """One injected failure. kind: `status` (HTTP error), `slow` (delay, then answer normally),
    `drop` (close the connection without an answer)."""

    path: str = "*"
    kind: str = "status"
    status: int = 500
    times: int = 1
    after: int = 0                 # let this many matching requests through first
    retry_after: int | None = None
    delay: float = 0.0
    code: int | None = None
    msg: str | None = None
    html: bool = False             # a 5xx with an HTML body, as a load balancer sends
    seen: int = field(default=0, repr=False)


@dataclass
class Endpoint:
    method: str
    path: str
    handler: Handler
    weight: int | Callable[[dict[str, str]], int]


class FakeBinance(Listening):
    def __init__(self, host: str = "127.0.0.1", weight_limit: int = 6000, ban_after_429s: int = 5,
                 modules: tuple[str, ...] = ("market", "exchange_info", "streams", "orders_api", "ws_api"),
                 heartbeat: float = 20.0):
        self.host = host
        self.port = 0
        self.weight_limit = weight_limit
        self.ban_after_429s = ban_after_429s
        self.clock_offset_ms = 0
        self.requests: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self.endpoints: dict[tuple[str, str], Endpoint] = {}
        self.state: dict[str, Any] = {}    # modules keep their data here
        self.heartbeat = heartbeat         # WebSocket ping period (s); a client must pong within half of it
        self.routes: list[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = []
        self.on_stop: list[Callable[[], Awaitable[None]]] = []
        self.streams: Any = None           # the market streams' control (streams.py)
        self.orders: Any = None            # the matching engine (orders.py)
        self.ws_api: Any = None            # the WebSocket API / user data stream (ws_api.py)
        self._sites: list[web.TCPSite] = []
        self._refusing = False
        self._lock = threading.RLock()
        self._window = -1
        self._used = 0
        self._preloaded: dict[int, int] = {}
        self._429s = 0
        self._banned_until_ms = 0
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        for name in modules:
            install_module(name, self)

    # ---- configuration --------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """What `binance.api_url` must be set to (python-binance appends /v3/<path>)."""
        return f"{self.base_url}/api"

    @property
    def stream_url(self) -> str:
        """What `binance.stream_url` / BinanceSocketManager.STREAM_URL must be (ends with `/`)."""
        return f"ws://{self.host}:{self.port}/"

    @property
    def ws_api_url(self) -> str:
        """What `binance.ws_api_url` / AsyncClient.WS_API_URL must be."""
        return f"ws://{self.host}:{self.port}/ws-api/v3"

    def endpoint(self, method: str, path: str, weight: int | Callable[[dict[str, str]], int] = 1
                 ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.endpoints[(method.upper(), path)] = Endpoint(method.upper(), path, handler, weight)
            return handler

        return register

    def server_time_ms(self) -> int:
        return int(time.time() * 1000) + self.clock_offset_ms

    def set_clock(self, now_ms: int | None = None, offset_ms: int | None = None) -> None:
        """Move the server clock: to `now_ms` at this instant, or by `offset_ms` from real time."""
        with self._lock:
            self.clock_offset_ms = offset_ms if offset_ms is not None else int(now_ms or 0) - int(time.time() * 1000)

    def preload_weight(self, used: int, minute: int | None = None) -> None:
        """Pretend other clients on this IP already used `used` weight in the current (or given) minute."""
        with self._lock:
            self._preloaded[minute if minute is not None else self.server_time_ms() // MINUTE_MS] = used
            self._window = -1

    def fail_next(self, **fault: Any) -> None:
        with self._lock:
            self.faults.append(Fault(**fault))

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.faults.clear()
            self._preloaded.clear()
            self._window, self._used, self._429s, self._banned_until_ms = -1, 0, 0, 0

    def requests_to(self, path: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if r["path"] == path]

    # ---- HTTP -----------------------------------------------------------------------------------
    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/_control/{action}", self._control)
        for method, path, handler in self.routes:
            app.router.add_route(method, path, handler)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        params: dict[str, str] = dict(request.query)
        if request.can_read_body and request.method in ("POST", "PUT", "DELETE"):
            params.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
        now = self.server_time_ms()
        entry = {"method": request.method, "path": request.path, "params": params, "server_time_ms": now,
                 "status": 200, "wall_ns": time.time_ns()}   # arrival, wall clock (latency figures across processes)
        with self._lock:
            self.requests.append(entry)
        endpoint = self.endpoints.get((request.method, request.path))
        fault = self._take_fault(request.path)
        try:
            if fault is not None:
                response = await self._apply_fault(fault, request)
                if response is not None:
                    entry["status"] = response.status
                    return response
            if endpoint is None:
                raise ApiError(404, -1000, f"fake Binance: no endpoint {request.method} {request.path}")
            weight = endpoint.weight(params) if callable(endpoint.weight) else endpoint.weight
            used = self._charge(weight, now)
            result = await endpoint.handler(request, params)
            response = result if isinstance(result, web.StreamResponse) else web.json_response(result)
            response.headers["X-MBX-USED-WEIGHT-1M"] = str(used)
        except ApiError as exc:
            response = web.json_response({"code": exc.code, "msg": exc.msg}, status=exc.status, headers=exc.headers)
            if exc.status not in (418,):
                response.headers["X-MBX-USED-WEIGHT-1M"] = str(self._used)
        entry["status"] = response.status
        return response

    def _charge(self, weight: int, now: int) -> int:
        """Add `weight` to this minute's total; 429 over the limit, 418 when 429s are ignored."""
        with self._lock:
            if now < self._banned_until_ms:
                wait = (self._banned_until_ms - now + 999) // 1000
                raise ApiError(418, -1003, f"Way too much request weight used; IP banned until "
                               f"{self._banned_until_ms}. Please use WebSocket Streams for live updates "
                               "to avoid bans.", {"Retry-After": str(wait)})
            minute = now // MINUTE_MS
            if minute != self._window:
                self._window, self._used, self._429s = minute, self._preloaded.get(minute, 0), 0
            if self._used + weight > self.weight_limit:
                self._429s += 1
                wait = (MINUTE_MS - now % MINUTE_MS + 999) // 1000
                if self._429s > self.ban_after_429s:
                    self._banned_until_ms = now + 120_000
                    wait = 120
                    raise ApiError(418, -1003, f"Way too much request weight used; IP banned until "
                                   f"{self._banned_until_ms}. Please use WebSocket Streams for live updates "
                                   "to avoid bans.", {"Retry-After": str(wait)})
                raise ApiError(429, -1003, f"Too much request weight used; current limit is {self.weight_limit} "
                               "request weight per 1 MINUTE. Please use WebSocket Streams for live updates "
                               "to avoid polling the API.", {"Retry-After": str(wait)})
            self._used += weight
            return self._used

    def _take_fault(self, path: str) -> Fault | None:
        """Every matching fault counts the request; the first one past its `after` fires."""
        with self._lock:
            chosen = None
            for fault in self.faults:
                if fault.path not in (path, "*"):
                    continue
                fault.seen += 1
                if chosen is None and fault.seen > fault.after:
                    chosen = fault
            if chosen is not None:
                chosen.times -= 1
                if chosen.times <= 0:
                    self.faults.remove(chosen)
            return chosen

    async def _apply_fault(self, fault: Fault, request: web.Request) -> web.StreamResponse | None:
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay)
            return None
        if fault.kind == "drop":
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=499)
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        if fault.html:
            body = f"<html><body><h1>{fault.status} Bad Gateway</h1></body></html>"
            return web.Response(status=fault.status, text=body, content_type="text/html", headers=headers)
        code = fault.code if fault.code is not None else (-1003 if fault.status in (418, 429) else -1000)
        msg = fault.msg or ("Too much request weight used; current limit is 6000 request weight per 1 MINUTE."
                            if fault.status == 429 else "An unknown error occurred while processing the request.")
        return web.json_response({"code": code, "msg": msg}, status=fault.status, headers=headers)

    async def _control(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        body = await request.json() if request.can_read_body else {}
        if action == "health":
            return web.json_response({"ok": True, "api_url": self.api_url})
        if action == "requests":
            with self._lock:
                return web.json_response(list(self.requests))
        if action == "fail":
            self.fail_next(**body)
        elif action == "clock":
            self.set_clock(body.get("now_ms"), body.get("offset_ms"))
        elif action == "weight":
            self.preload_weight(int(body["used"]), body.get("minute"))
        elif action == "reset":
            self.reset()
        elif action == "refuse":
            await self._set_refusing(True, body.get("seconds"))
        elif action == "accept":
            await self._set_refusing(False)
        elif action in CONTROL_ACTIONS:
            try:
                result = CONTROL_ACTIONS[action](self, body)
            except ApiError as exc:  # e.g. a hand-placed order the account cannot pay for
                return web.json_response({"ok": False, "code": exc.code, "msg": exc.msg}, status=exc.status)
            if result is not None:
                return web.json_response({"ok": True, "result": result})
        else:
            return web.json_response({"ok": False, "error": f"unknown control action {action}"}, status=404)
        return web.json_response({"ok": True})

    # ---- lifecycle ------------------------------------------------------------------------------
    async def start(self, port: int = 0) -> FakeBinance:
        # a short shutdown: a test that injected a slow answer must not wait for it at teardown
        self._runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        self._loop = asyncio.get_running_loop()
        await self._listen(port)
        return self

    async def stop(self) -> None:
        for hook in self.on_stop:
            await hook()
        self._sites.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeBinance:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @contextmanager
    def run_in_thread(self, port: int = 0) -> Iterator[FakeBinance]:
        """Serve from a daemon thread with its own event loop for the duration of the block."""
        started = threading.Event()
        errors: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                loop.run_until_complete(self.start(port))
            except BaseException as exc:  # surfaced to the caller below
                errors.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            pending = asyncio.all_tasks(loop)  # e.g. an injected slow answer still sleeping
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=serve, name="fake-binance", daemon=True)
        self._thread.start()
        started.wait(10)
        if errors:
            raise errors[0]
        try:
            yield self
        finally:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


def fault_dict(fault: Fault) -> dict[str, Any]:
    return {k: v for k, v in asdict(fault).items() if k != "seen"}


# module name -> installer(fake); control action name -> handler(fake, body)
MODULES: dict[str, Callable[[FakeBinance], None]] = {}
CONTROL_ACTIONS: dict[str, Callable[[FakeBinance, dict[str, Any]], None]] = {}


def install_module(name: str, fake: FakeBinance) -> None:
    if name not in MODULES:
        # modules register themselves on import
        __import__(f"tests.fakes.binance.{name}")
    MODULES[name](fake)


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))
