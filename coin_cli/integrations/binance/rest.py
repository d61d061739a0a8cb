"""`BinanceRESTClient`: the ONE wrapper of python-binance's `AsyncClient` (every REST call of the
project goes through it), with the request policy in one place:

- the endpoint is `binance.api_url`, set as `API_URL` on an AsyncClient subclass (python-binance
  has no base_url argument; binance.md §4);
- weight pacing: every answer's `X-MBX-USED-WEIGHT-1M` goes into a `WeightBudget`; a request that
  would pass the budget waits for the next minute of the SERVER clock. One budget per process can be
  shared by several clients (limits are per IP, binance.md §1);
- 429/418 wait the server's `Retry-After` (a wait past `retry_after_cap` - a ban can last days -
  fails at once); 5xx, timeouts and connection errors back off exponentially with jitter; both
  through tenacity, `max_retries` retries, then an ExchangeError (exit 4) naming the endpoint;
- `-1121 Invalid symbol` is a UsageError (exit 2); any other 4xx an ExchangeError at once;
- klines come back CLOSED only: the still-open last row (closeTime >= server now) is dropped; rows
  before the last are closed by definition, whatever the clock estimate says.

Order endpoints are NOT retried by this policy (a 5xx on an order means status unknown: query it,
never resend) - a later order client shares the `WeightBudget` but keeps its own rule.

Use:  `async with BinanceRESTClient(settings.binance.api_url) as rest: page = await rest.klines(...)`
or `BinanceRESTClient.from_settings(settings.binance)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from coin_cli.errors import ExchangeError, UsageError

if TYPE_CHECKING:
    from coin_cli.config import BinanceConfig
    from coin_cli.integrations.binance.filters import SymbolFilters
    from coin_cli.runtime.events import Candle

log = logging.getLogger("coin.binance.rest")

T = TypeVar("T")
MINUTE_MS = 60_000
WEIGHTS = {"ping": 1, "time": 1, "klines": 2, "exchangeInfo": 20}
RETRY_AFTER_CAP_S = 300.0   # a longer ban (418 can last days) fails the run instead of blocking it
BACKOFF_BASE_S = 0.25
BACKOFF_CAP_S = 8.0
KLINE_LIMIT_MAX = 1000


def client_class(api_url: str) -> type:
    """AsyncClient with its REST base set to `api_url` (e.g. http://127.0.0.1:PORT/api)."""
    from binance import AsyncClient

    return type("ConfiguredAsyncClient", (AsyncClient,), {"API_URL": api_url.rstrip("/")})


@dataclass
class RequestStats:
    """What the policy did: retried requests, waits (rate limit or backoff), the peak used weight."""

    requests: int = 0
    retries: int = 0
    rate_waits: int = 0
    waited_s: float = 0.0
    max_used_weight: int = 0


class WeightBudget:
    """Request weight per minute for one IP, shared by every REST client of the process.

    `note(used)` records the server's `X-MBX-USED-WEIGHT-1M`; `reserve(weight)` waits for the next
    minute (server clock) only when `used + weight` would pass `max_per_minute`."""

    def __init__(self, max_per_minute: int = 5000) -> None:
        self.max_per_minute = max_per_minute
        self.used = 0
        self._minute = -1
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def note(self, used: int | None, server_now_ms: int) -> None:
        if used is None:
            return
        self.used, self._minute = used, server_now_ms // MINUTE_MS

    async def reserve(self, weight: int, server_now_ms: Callable[[], int], stats: RequestStats | None = None) -> None:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop is not loop:  # a Lock belongs to one loop (asyncio.run each)
            self._lock, self._loop = asyncio.Lock(), loop
        async with self._lock:
            now = server_now_ms()
            if now // MINUTE_MS != self._minute:   # a new window: the server's count restarted
                self.used, self._minute = 0, now // MINUTE_MS
            if self.used + weight <= self.max_per_minute:
                self.used += weight
                return
            wait = (MINUTE_MS - now % MINUTE_MS + 50) / 1000.0
            log.info("used weight %d of %d this minute: waiting %.1f s for the next window",
                     self.used, self.max_per_minute, wait)
            if stats is not None:
                stats.rate_waits += 1
                stats.waited_s += wait
            await asyncio.sleep(wait)
            self.used, self._minute = weight, server_now_ms() // MINUTE_MS


@dataclass
class KlinePage:
    """One klines answer. `rows` are the CLOSED klines (Binance's 12-field arrays, oldest first);
    `received` counts every row returned, `open_dropped` the still-open one(s) removed, and
    `last_open` is the open time of the last row RECEIVED (for paging), None for an empty page."""

    rows: list[list[Any]]
    received: int
    open_dropped: int
    last_open: int | None
    server_now_ms: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def candles(self) -> list[Candle]:
        """The closed rows as runtime `Candle`s (floats; closed=True)."""
        from coin_cli.runtime.events import Candle

        return [Candle(int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5]), int(r[6]))
                for r in self.rows]


class _Transient(Exception):
    """A failure worth retrying; `wait` is the server's Retry-After when it gave one."""

    def __init__(self, problem: str, wait: float | None = None) -> None:
        super().__init__(problem)
        self.problem, self.wait = problem, wait


class BinanceRESTClient:
    """Binance Spot REST (public market data) with the project's request policy; see the module doc."""

    def __init__(self, api_url: str, *, timeout: float = 10.0, max_retries: int = 5,
                 budget: WeightBudget | None = None, api_key: str | None = None, api_secret: str | None = None,
                 retry_after_cap: float = RETRY_AFTER_CAP_S, backoff_base: float = BACKOFF_BASE_S,
                 backoff_cap: float = BACKOFF_CAP_S) -> None:
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.budget = budget or WeightBudget()
        self.retry_after_cap = retry_after_cap
        self.backoff_base, self.backoff_cap = backoff_base, backoff_cap
        self.stats = RequestStats()
        self.time_offset_ms = 0
        self._keys = (api_key, api_secret)
        self._client: Any = None

    @classmethod
    def from_settings(cls, binance: BinanceConfig, budget: WeightBudget | None = None,
                      max_weight_per_minute: int | None = None) -> BinanceRESTClient:
        if budget is None and max_weight_per_minute is not None:
            budget = WeightBudget(max_weight_per_minute)
        return cls(binance.api_url, timeout=binance.timeout, max_retries=binance.max_retries, budget=budget)

    # ---- lifecycle ------------------------------------------------------------------------------
    async def connect(self) -> BinanceRESTClient:
        """Open the HTTP session and measure the server clock (GET ping + time), with the retry policy.
        A market unreachable after the retries is an ExchangeError naming the endpoint."""
        if self._client is None:
            cls = client_class(self.api_url)
            # create() pings and reads the server time; it closes its session when that fails
            self._client = await self._call("connect", WEIGHTS["ping"] + WEIGHTS["time"], lambda: cls.create(
                *self._keys, requests_params={"timeout": self.timeout}))
        return self

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            with contextlib.suppress(TimeoutError, OSError):  # closing never hangs or fails the command
                await asyncio.wait_for(client.close_connection(), 5.0)

    async def __aenter__(self) -> BinanceRESTClient:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def client(self) -> Any:
        """The underlying python-binance AsyncClient (connected)."""
        if self._client is None:
            raise RuntimeError("BinanceRESTClient is not connected: use `async with` or await connect()")
        return self._client

    # ---- clock ----------------------------------------------------------------------------------
    def server_now_ms(self) -> int:
        """The server's clock now, from the offset measured at connect (or by server_time())."""
        return int(time.time() * 1000) + self.time_offset_ms

    async def server_time(self) -> int:
        """GET /api/v3/time; updates the clock offset. Returns the server time in ms."""
        answer = await self._call("time", WEIGHTS["time"], lambda: self.client.get_server_time())
        server = int(answer["serverTime"])
        self.time_offset_ms = server - int(time.time() * 1000)
        return server

    # ---- market data ----------------------------------------------------------------------------
    async def klines(self, symbol: str, interval: str, start_ms: int | None = None, end_ms: int | None = None,
                     limit: int = KLINE_LIMIT_MAX) -> KlinePage:
        """GET /api/v3/klines (weight 2) -> the CLOSED klines of [start_ms, end_ms] (open times,
        inclusive), oldest first, at most `limit` (<= 1000) received. The still-open candle is dropped
        by the server clock. Callers page with `last_open + 1` while `received == limit`."""
        params: dict[str, Any] = {"symbol": symbol, "interval": interval, "limit": min(int(limit), KLINE_LIMIT_MAX)}
        if start_ms is not None:
            params["startTime"] = int(start_ms)
        if end_ms is not None:
            params["endTime"] = int(end_ms)
        rows = await self._call("klines", WEIGHTS["klines"], lambda: self.client.get_klines(**params))
        if not isinstance(rows, list):
            raise ExchangeError(f"{self.api_url}/v3/klines: expected a list of klines, got {type(rows).__name__}")
        now = self.server_now_ms()
        try:
            # Only the newest row can be the still-open candle: every row before it is closed, even
            # when our estimate of the server clock (taken at connect) lags after a suspend.
            closed = rows[:-1] + [r for r in rows[-1:] if int(r[6]) < now]
            last_open = int(rows[-1][0]) if rows else None
        except (TypeError, ValueError, IndexError) as exc:
            raise ExchangeError(f"{self.api_url}/v3/klines: malformed kline rows from the exchange ({exc})") from None
        return KlinePage(closed, len(rows), len(rows) - len(closed), last_open, now)

    async def klines_range(self, symbol: str, interval: str, start_ms: int, end_ms: int,
                           limit: int = KLINE_LIMIT_MAX) -> list[list[Any]]:
        """Every CLOSED kline with open time in [start_ms, end_ms], paging as needed (for gap fills)."""
        out: list[list[Any]] = []
        cursor = start_ms
        while cursor <= end_ms:
            page = await self.klines(symbol, interval, cursor, end_ms, limit)
            out.extend(page.rows)
            if page.last_open is None or page.received < limit or page.open_dropped or page.last_open < cursor:
                break
            cursor = page.last_open + 1
        return out

    async def exchange_info_raw(self, symbol: str) -> dict[str, Any]:
        """GET /api/v3/exchangeInfo?symbol= (weight 20) -> the symbol's raw `symbols[]` entry."""
        answer = await self._call("exchangeInfo", WEIGHTS["exchangeInfo"],
                                  lambda: self.client._get("exchangeInfo", data={"symbol": symbol}))
        symbols = answer.get("symbols") if isinstance(answer, dict) else None
        info = next((s for s in symbols or [] if isinstance(s, dict) and s.get("symbol") == symbol), None)
        if info is None:
            raise ExchangeError(f"{self.api_url}/v3/exchangeInfo: no entry for {symbol} in the answer")
        return info

    async def exchange_info(self, symbol: str) -> SymbolFilters:
        """The symbol's parsed filters (see filters.py; `filters.fetch_filters` also caches them)."""
        from coin_cli.integrations.binance.filters import parse_symbol_info

        info = await self.exchange_info_raw(symbol)
        return parse_symbol_info(info, where=f"{self.api_url}/v3/exchangeInfo {symbol}")

    # ---- the policy -----------------------------------------------------------------------------
    async def _call(self, what: str, weight: int, call: Callable[[], Awaitable[T]]) -> T:
        """Run `call` under the policy: pace, classify the failure, retry transient ones (tenacity)."""
        from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, _Transient) and exc.wait is not None:
                return exc.wait
            return self._backoff(state.attempt_number - 1)

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            pause = state.next_action.sleep if state.next_action else 0.0
            self.stats.retries += 1
            self.stats.waited_s += pause
            log.warning("%s: %s; retry %d/%d in %.2f s", what, exc, state.attempt_number, self.max_retries, pause)

        retrying = AsyncRetrying(stop=stop_after_attempt(self.max_retries + 1), wait=wait,
                                 retry=retry_if_exception_type(_Transient), before_sleep=before_sleep, reraise=True)
        try:
            async for attempt in retrying:
                with attempt:
                    await self.budget.reserve(weight, self.server_now_ms, self.stats)
                    return await self._attempt(what, call)
        except _Transient as exc:
            raise ExchangeError(f"{self.api_url}: {what} failed after {self.max_retries} retries "
                                f"({exc.problem})") from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        import aiohttp
        from binance.exceptions import BinanceAPIException, BinanceRequestException

        self.stats.requests += 1
        try:
            result = await call()
        except BinanceAPIException as exc:
            status = int(exc.status_code)
            if status in (429, 418):
                wait = _retry_after(exc.response)
                if wait is not None and wait > self.retry_after_cap:
                    raise ExchangeError(f"{self.api_url}: HTTP {status} (code {exc.code}): Binance asks to wait "
                                        f"{wait:.0f} s (IP rate limit or ban); try again later") from None
                raise _Transient(f"HTTP {status} (code {exc.code}), Retry-After {wait:g} s" if wait is not None
                                 else f"HTTP {status} (code {exc.code})", wait) from None
            if status >= 500:
                raise _Transient(f"HTTP {status}") from None
            if exc.code == -1121:
                raise UsageError(f"{self.api_url}: Binance says {exc.message} (code -1121): check --symbol") from None
            raise ExchangeError(f"{self.api_url}: {what}: HTTP {status} (code {exc.code}): {exc.message}") from None
        except (aiohttp.ClientError, TimeoutError, BinanceRequestException, OSError) as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}".strip().rstrip(":")) from None
        source = self._client
        if source is None:  # connect(): the result is the client itself, its last answer GET /time
            source = result
            self.time_offset_ms = int(getattr(result, "timestamp_offset", 0) or 0)
        response = getattr(source, "response", None)
        used = _int_header(response, "X-MBX-USED-WEIGHT-1M")
        if used is not None:
            self.budget.note(used, self.server_now_ms())
            self.stats.max_used_weight = max(self.stats.max_used_weight, used)
        return result

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with 'equal jitter': half fixed, half random (a fleet never syncs up)."""
        import random

        ceiling = min(self.backoff_cap, self.backoff_base * 2**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def _retry_after(response: Any) -> float | None:
    value = _header(response, "Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _int_header(response: Any, name: str) -> int | None:
    value = _header(response, name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _header(response: Any, name: str) -> str | None:
    headers = getattr(response, "headers", None)
    return None if headers is None else headers.get(name)
