"""TelegramSender: python-telegram-bot 22 `Bot.send_message` with coin's retry policy.

Protocol facts (../shared/reference/telegram.md, verified against a loopback server):
- A fresh `HTTPXRequest` + `Bot` inside each `asyncio.run` (`TelegramSender.run`); a Bot or
  httpx client reused across event loops fails with "Event loop is closed" AFTER delivering.
- No `initialize()`/getMe: one round trip per message, and no `InvalidToken` text carrying the
  token. The token still appears in some PTB/httpx texts, so every error text is redacted.
- `BadRequest` and `TimedOut` are subclasses of `NetworkError`: specific classes are caught first.

Retry policy per message (at most `max_attempts` tries):
- RetryAfter: wait `retry_after` (int or timedelta) if it is within `retry_after_cap`, then retry;
  a longer wait is not done here: the message stays queued and the chat is blocked until then.
- Not sent (connect error/timeout, pool timeout) and 5xx answers: exponential backoff with jitter.
- TimedOut after the request went out (read/write timeout, dropped connection): Telegram may
  already have the message. Alerts prefer a possible duplicate over a loss: retry with backoff,
  and count the attempt in `timeouts` so callers can report "may arrive twice".
- BadRequest / Forbidden / InvalidToken / ChatMigrated: never retried; `fix` says what to change.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from coin_cli.config import redact_values

# Read by PTB when a RetryAfter is built/read: a timedelta instead of a deprecation warning
# (a warning turned into an error would otherwise replace the RetryAfter itself).
os.environ.setdefault("PTB_TIMEDELTA", "1")

log = logging.getLogger("coin.notify")
T = TypeVar("T")

Outcome = Literal["sent", "retry_later", "rejected", "chat_error"]
_PARSE_MODES = {"html": "HTML", "none": None}
# BadRequest descriptions that mean the destination is wrong, not this one message.
_CHAT_PROBLEMS = ("chat not found", "chat_id is empty", "peer_id_invalid", "not enough rights",
                  "have no rights", "bot is not a member", "user not found", "group chat was upgraded")


@dataclass
class SendResult:
    outcome: Outcome
    message_id: int | None = None
    attempts: int = 0
    timeouts: int = 0            # attempts that timed out after sending: the message may have arrived
    error: str | None = None     # redacted, one line
    fix: str | None = None       # one line: what the user should change
    new_chat_id: str | None = None
    retry_at: float | None = None  # flood control: the chat is blocked until this epoch time


@dataclass
class RetryPolicy:
    max_attempts: int = 4
    retry_after_cap: float = 30.0
    backoff_base: float = 0.5
    backoff_cap: float = 8.0
    # between tries: base * 2^(try-1), capped (tenacity's wait_exponential), times this factor
    jitter: Callable[[], float] = field(default=lambda: random.uniform(0.5, 1.0))


def is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


def retry_after_seconds(value: Any) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class TelegramSender:
    """Sends messages through the Bot API at `api_url` (token appended, as PTB does)."""

    def __init__(self, token: str, *, api_url: str = "https://api.telegram.org/bot", read_timeout: float = 10.0,
                 connect_timeout: float = 5.0, policy: RetryPolicy | None = None):
        self._token = token
        self.api_url = api_url
        self.read_timeout = read_timeout
        self.connect_timeout = connect_timeout
        self.policy = policy or RetryPolicy()
        # PTB logs unparsable answers (an nginx 502 page) with a traceback at ERROR; coin reports
        # the failure itself, once, redacted.
        logging.getLogger("telegram").setLevel(logging.CRITICAL)

    @classmethod
    def from_settings(cls, token: str, telegram: Any) -> TelegramSender:
        """Build from `settings.telegram` (coin_cli.config.TelegramConfig)."""
        policy = RetryPolicy(max_attempts=telegram.max_attempts, retry_after_cap=telegram.retry_after_cap,
                             backoff_base=telegram.backoff_base, backoff_cap=telegram.backoff_cap)
        return cls(token, api_url=telegram.api_url, read_timeout=telegram.read_timeout,
                   connect_timeout=telegram.connect_timeout, policy=policy)

    def redact(self, text: str) -> str:
        return redact_values(text, [self._token])

    def run(self, job: Callable[[Session], Awaitable[T]]) -> T:
        """Run `job(session)` in a fresh event loop with a fresh HTTP client and Bot."""
        return asyncio.run(self._run(job))

    async def _run(self, job: Callable[[Session], Awaitable[T]]) -> T:
        from telegram import Bot
        from telegram.request import HTTPXRequest

        # Proxy variables are honoured for the real API, ignored for loopback (tests, local
        # Bot API servers): httpx would otherwise send even 127.0.0.1 through HTTP_PROXY.
        httpx_kwargs: dict[str, Any] = {"trust_env": not is_loopback(self.api_url)}
        if urlsplit(self.api_url).scheme == "http":
            httpx_kwargs["verify"] = False  # no TLS on plain http: skip loading the CA bundle (~30 ms)
        request = HTTPXRequest(connection_pool_size=1, read_timeout=self.read_timeout,
                               write_timeout=self.read_timeout, connect_timeout=self.connect_timeout,
                               pool_timeout=self.connect_timeout, httpx_kwargs=httpx_kwargs)
        try:
            async with request:
                # The same request for getUpdates (never called): Bot would otherwise build a
                # second, never-closed HTTP client.
                bot = Bot(self._token, base_url=self.api_url, request=request, get_updates_request=request)
                return await job(Session(self, bot))
        except Exception as exc:  # never let a PTB/httpx text carrying the token escape
            from coin_cli.errors import CoinError, NotifyError

            if isinstance(exc, CoinError):
                raise
            raise NotifyError(f"Telegram client failed: {self.redact(f'{type(exc).__name__}: {exc}')}") from None

    def send(self, chat_id: str, text: str, *, parse_mode: str = "html", silent: bool = False) -> SendResult:
        """One message, with retries, in its own event loop."""

        async def job(session: Session) -> SendResult:
            return await session.send(chat_id, text, parse_mode=parse_mode, silent=silent)

        return self.run(job)


class Session:
    """A Bot bound to one event loop (see TelegramSender.run)."""

    def __init__(self, sender: TelegramSender, bot: Any):
        self.sender = sender
        self.bot = bot

    async def send(self, chat_id: str, text: str, *, parse_mode: str = "html", silent: bool = False) -> SendResult:
        from telegram import LinkPreviewOptions
        from telegram.error import (
            BadRequest,
            ChatMigrated,
            Forbidden,
            InvalidToken,
            NetworkError,
            RetryAfter,
            TelegramError,
            TimedOut,
        )
        from tenacity import AsyncRetrying, retry_if_result, stop_after_attempt, wait_exponential

        policy, redact = self.sender.policy, self.sender.redact
        result = SendResult("retry_later")
        server_wait: list[float] = []   # a flood-control wait Telegram asked for, for the next try
        backoff = wait_exponential(multiplier=policy.backoff_base, max=policy.backoff_cap)

        def wait(state: Any) -> float:
            if server_wait:
                log.info("telegram flood control: waiting %.3g s", server_wait[0])
                return server_wait.pop()
            seconds = backoff(state) * policy.jitter()
            log.info("telegram send attempt %d failed (%s); retrying in %.2f s", state.attempt_number,
                     result.error, seconds)
            return seconds

        async def attempt() -> bool:
            """One try; True when it is worth another (the outcome is written into `result`)."""
            result.attempts += 1
            try:
                message = await self.bot.send_message(
                    chat_id=chat_id, text=text, parse_mode=_PARSE_MODES.get(parse_mode),
                    disable_notification=silent, link_preview_options=LinkPreviewOptions(is_disabled=True))
            except RetryAfter as exc:
                seconds = retry_after_seconds(exc.retry_after)
                result.error = f"flood control: Telegram asks to wait {seconds:g} s"
                if seconds > policy.retry_after_cap or result.attempts == policy.max_attempts:
                    result.retry_at = time.time() + seconds   # not waited here: the chat is blocked until then
                    return False
                server_wait[:] = [seconds]
                return True
            except ChatMigrated as exc:
                new = str(exc.new_chat_id)
                _permanent(result, "chat_error", f"group chat {chat_id} was upgraded to supergroup {new}",
                           f"set TELEGRAM_CHAT_ID (or telegram.chat_id) to {new}", new_chat_id=new)
                return False
            except InvalidToken as exc:
                _permanent(result, "chat_error", f"Telegram rejected the bot token ({redact(exc.message)})",
                           "check TELEGRAM_BOT_TOKEN (get the token from @BotFather)")
                return False
            except Forbidden as exc:
                _permanent(result, "chat_error", f"Telegram refused delivery ({redact(exc.message)})",
                           "unblock the bot, or add it back to the chat, or fix TELEGRAM_CHAT_ID")
                return False
            except BadRequest as exc:
                text_l = exc.message.lower()
                if any(p in text_l for p in _CHAT_PROBLEMS):
                    _permanent(result, "chat_error", f"Telegram: {redact(exc.message)}",
                               "check TELEGRAM_CHAT_ID (or telegram.chat_id); a user must send /start "
                               "to the bot first, and the bot must be a member of a group")
                else:
                    _permanent(result, "rejected", f"Telegram rejected the message: {redact(exc.message)}",
                               "fix the message text (or use --parse-mode none)")
                return False
            except TimedOut as exc:
                cause = type(exc.__cause__).__name__
                if cause in ("ConnectTimeout", "PoolTimeout") or "not* sent" in exc.message:
                    result.error = f"no connection to Telegram ({cause or 'timeout'})"
                else:
                    result.timeouts += 1
                    result.error = "Telegram did not answer in time (the message may have been delivered)"
            except NetworkError as exc:
                cause = exc.__cause__
                if cause is not None and type(cause).__name__ not in ("ConnectError", "TelegramError"):
                    result.timeouts += 1  # the connection broke after sending: may have been delivered
                short = exc.message.split(". Parsing the server response")[0].splitlines()[0]
                result.error = f"network error: {redact(short)[:200]}"
            except TelegramError as exc:  # Conflict, EndPointNotFound, ...: unexpected, treat as transient
                result.error = f"Telegram error: {redact(exc.message)[:200]}"
            else:
                result.outcome, result.message_id = "sent", message.message_id
                return False
            return True

        # The plain part (how many tries, how long between them) is tenacity's; what each Telegram
        # answer means (wait as told, give up, count a possible duplicate) is decided above.
        retrying = AsyncRetrying(stop=stop_after_attempt(policy.max_attempts), wait=wait,
                                 retry=retry_if_result(bool), retry_error_callback=lambda state: None,
                                 sleep=asyncio.sleep, reraise=True)
        await retrying(attempt)
        return result


def _permanent(result: SendResult, outcome: Outcome, error: str, fix: str,
               new_chat_id: str | None = None) -> SendResult:
    result.outcome, result.error, result.fix, result.new_chat_id = outcome, error, fix, new_chat_id
    return result
