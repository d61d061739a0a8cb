"""Draining the outbox through a TelegramSender: FIFO per chat, paced, stopping at the first
message that cannot go now (so later messages never overtake it).

Shared by `coin notify` (notify_service) and the runtime's OutboxNotifier; the caller holds
`Outbox.delivery_lock` around `deliver`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coin_cli.errors import ConfigError
from coin_cli.monitoring.messages import count_suffix
from coin_cli.monitoring.outbox import Outbox

if TYPE_CHECKING:
    from coin_cli.config import Secrets, Settings
    from coin_cli.integrations.telegram import SendResult, Session, TelegramSender

TOKEN_VAR, CHAT_VAR = "TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID"


@dataclass
class DrainReport:
    sent: list[int] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    attempts: int = 0
    timeouts: int = 0                 # sends that timed out and were retried: may have arrived twice
    paced_s: float = 0.0              # time spent waiting for the pacing limits
    stopped: SendResult | None = None  # why delivery stopped early (transient or chat-level)
    stopped_id: int | None = None


def outbox_path(settings: Settings) -> Path:
    return settings.telegram.outbox or Path(settings.paths.runs_dir) / "outbox.sqlite"


def destination(settings: Settings, secrets: Secrets) -> tuple[str, str]:
    """The bot token and chat id, or a ConfigError naming the variables to set."""
    token = secrets.telegram_bot_token
    chat = secrets.telegram_chat_id or settings.telegram.chat_id
    missing = []
    if not token:
        missing.append(TOKEN_VAR)
    if not chat:
        missing.append(f"{CHAT_VAR} (or telegram.chat_id in the config)")
    if missing:
        raise ConfigError("Telegram is not configured: set " + " and ".join(missing) + " in the environment")
    return str(token), str(chat).strip()


async def drain(session: Session, outbox: Outbox, chat_id: str, *, min_interval: float, group_per_minute: int,
                max_wait: float, force: bool = False, between: Callable[[], Any] | None = None) -> DrainReport:
    """Send due messages for `chat_id` oldest first; `force` also sends collapsed repeats early.
    `between()` runs before each message; a truthy return ends the pass (e.g. a shutdown deadline)."""
    from coin_cli.integrations.telegram import SendResult

    report = DrainReport()
    while True:
        if between is not None and between():
            return report
        row = outbox.next_due(chat_id, force=force)
        if row is None:
            return report
        wait = outbox.pacing_wait(chat_id, min_interval=min_interval, group_per_minute=group_per_minute)
        if wait > max_wait:
            report.stopped = SendResult("retry_later", error=f"pacing: the next message to this chat may go in "
                                        f"{wait:.0f} s (flood-control limits)")
            report.stopped_id = row.id
            return report
        if wait > 0:
            report.paced_s += wait
            await asyncio.sleep(wait)
        row = outbox.mark_sending(row.id)
        text = row.text + count_suffix(row.count, row.first_seen, row.last_seen, row.repeat)
        result = await session.send(chat_id, text, parse_mode=row.parse_mode, silent=row.silent)
        report.attempts += result.attempts
        report.timeouts += result.timeouts
        error = result.error or result.outcome
        if result.outcome == "sent":
            outbox.mark_sent(row.id, chat_id, telegram_message_id=result.message_id, attempts=result.attempts,
                             timeouts=result.timeouts)
            report.sent.append(row.id)
            continue
        if result.outcome == "rejected":
            outbox.mark_rejected(row.id, attempts=result.attempts, timeouts=result.timeouts, error=error)
            report.rejected.append((row.id, f"{error}; {result.fix}" if result.fix else error))
            continue
        outbox.mark_unsent(row.id, attempts=result.attempts, timeouts=result.timeouts, error=error)
        if result.retry_at is not None:
            outbox.block_chat(chat_id, result.retry_at)
        if result.new_chat_id is not None:
            outbox.retarget(chat_id, result.new_chat_id)
        report.stopped, report.stopped_id = result, row.id
        return report


def deliver(outbox: Outbox, sender: TelegramSender, chat_id: str, telegram: Any, *, force: bool = False,
            between: Callable[[], Any] | None = None) -> DrainReport:
    """One delivery pass, in its own event loop. Call with the outbox delivery lock held."""
    outbox.recover_and_prune()

    async def job(session: Session) -> DrainReport:
        return await drain(session, outbox, chat_id, min_interval=telegram.min_interval,
                           group_per_minute=telegram.group_per_minute, max_wait=telegram.retry_after_cap,
                           force=force, between=between)

    return sender.run(job)


def lock_wait_seconds(telegram: Any) -> float:
    """How long a `coin notify` waits for another process that is delivering: about the longest
    one message can take with every retry (the holder sends our message too when it can)."""
    per_attempt = telegram.read_timeout + telegram.connect_timeout + telegram.backoff_cap
    return telegram.max_attempts * per_attempt + telegram.retry_after_cap + 5.0
