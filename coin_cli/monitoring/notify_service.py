"""The service behind `coin notify`: enqueue the message into the durable outbox, then deliver
the backlog (oldest first, ours last) and report what happened.

Outcomes: delivered -> summary (exit 0); collapsed into an identical recent alert -> summary
(exit 0, sent later with a count); Telegram refuses the destination or the message -> ConfigError
(exit 2, one line saying what to fix); not delivered after the retries -> NotifyError (exit 4), the
message stays in the outbox for the next `coin notify` / `coin notify --flush`.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from coin_cli.config import Secrets, redact_values
from coin_cli.errors import ConfigError, NotifyError, UsageError
from coin_cli.monitoring.delivery import DrainReport, deliver, destination, lock_wait_seconds, outbox_path
from coin_cli.monitoring.messages import build_parts
from coin_cli.monitoring.outbox import Enqueued, Outbox

if TYPE_CHECKING:
    from coin_cli.config import Settings
    from coin_cli.runs import Run

log = logging.getLogger("coin.notify")
_CODE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def send_notification(settings: Settings, run: Run, *, text: str | None, code: str | None = None,
                      silent: bool = False, flush: bool = False, secrets: Secrets | None = None) -> dict[str, Any]:
    """Queue `text` (None with `flush`: only deliver the backlog) and deliver; returns the summary."""
    secrets = secrets or Secrets.from_env()
    if text is None and not flush:
        raise UsageError("nothing to send: give the message text, --stdin, or --flush")
    if code is not None and not _CODE.fullmatch(code):
        raise UsageError(f"--code {code!r}: use 1-64 letters, digits or _ . : - (e.g. BACKUP_FAILED)")
    token, chat_id = destination(settings, secrets)
    tg = settings.telegram
    outbox = Outbox(outbox_path(settings))
    try:
        queued = _enqueue(outbox, text, chat_id, tg, code, silent, secrets) if text is not None else []
        report, held = _deliver(outbox, token, chat_id, tg, queued, force=flush)
        summary = _summary(outbox, chat_id, queued, report, flush)
    finally:
        outbox.close()
    run.write_json("delivery.json", summary)
    _raise_for(summary, report, held, queued)
    return summary


def _enqueue(outbox: Outbox, text: str, chat_id: str, tg: Any, code: str | None, silent: bool,
             secrets: Secrets) -> list[Enqueued]:
    # The chat id is not a secret inside a message; tokens and API keys are (e.g. a piped log).

    clean = redact_values(text, [secrets.telegram_bot_token, secrets.binance_api_key, secrets.binance_api_secret])
    if not clean.strip():
        raise UsageError("the message text is empty")
    parts = build_parts(clean, chat_id=chat_id, parse_mode=tg.parse_mode, silent=silent, code=code)
    return outbox.enqueue(chat_id, [(p.text, p.dedupe_key) for p in parts], parse_mode=tg.parse_mode,
                          # only alerts (--code) collapse: two plain "backup done" are two messages
                          silent=silent, dedupe_window=tg.dedupe_window if code else 0.0, source="cli")


def _deliver(outbox: Outbox, token: str, chat_id: str, tg: Any, queued: list[Enqueued],
             force: bool) -> tuple[DrainReport, bool]:
    orphans = outbox.counts(chat_id).get("sending", 0)  # left by a process killed mid-send
    if not orphans and outbox.next_due(chat_id, force=force) is None and all(q.action == "deferred" for q in queued):
        return DrainReport(), True  # nothing due (ours was collapsed into a later send): no network

    ours = [q.id for q in queued]

    def already_done() -> bool:  # another process holding the lock delivered ours meanwhile
        rows = [outbox.get(i) for i in ours]
        return bool(ours) and all(r is not None and r.status in ("sent", "rejected") for r in rows)

    from coin_cli.integrations.telegram import TelegramSender

    sender = TelegramSender.from_settings(token, tg)
    with outbox.delivery_lock(lock_wait_seconds(tg), give_up=already_done if not force else None) as held:
        if not held:
            return DrainReport(), False
        return deliver(outbox, sender, chat_id, tg, force=force), True


def _summary(outbox: Outbox, chat_id: str, queued: list[Enqueued], report: DrainReport,
             flush: bool) -> dict[str, Any]:
    rows = [outbox.get(q.id) for q in queued]
    statuses = [r.status if r else "missing" for r in rows]
    ours = {q.id for q in queued}
    if not queued:
        status = "flushed"
    elif all(s == "sent" for s in statuses):
        status = "delivered"
    elif any(s == "rejected" for s in statuses):
        status = "rejected"
    elif all(s == "sent" or q.action == "deferred" for s, q in zip(statuses, queued, strict=True)):
        status = "collapsed"
    else:
        status = "queued"
    counts = outbox.counts(chat_id)
    all_pending = outbox.counts().get("pending", 0)
    summary: dict[str, Any] = {
        "status": status,
        "parts": len(queued),
        "collapsed": sum(1 for q in queued if q.action != "queued"),
        "telegram_message_ids": [r.telegram_message_id for r in rows if r and r.telegram_message_id],
        "attempts": report.attempts,
        "possible_duplicates": report.timeouts,
        "backlog_sent": sum(1 for i in report.sent if i not in ours),
        "rejected": len(report.rejected),
        "paced_s": round(report.paced_s, 3),
        "pending": counts.get("pending", 0),
        "pending_other_chats": all_pending - counts.get("pending", 0),
        "outbox": str(outbox.path),
    }
    deferred = [q.not_before for q in queued if q.action == "deferred"]
    if status == "collapsed" and deferred:
        at = datetime.fromtimestamp(max(deferred), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        summary["send_after"] = at
    if report.stopped is not None:
        summary["error"] = report.stopped.error
        if report.stopped.fix:
            summary["fix"] = report.stopped.fix
    if report.rejected:
        summary["rejected_errors"] = [err for _, err in report.rejected]
    return summary


def _raise_for(summary: dict[str, Any], report: DrainReport, held: bool, queued: list[Enqueued]) -> None:
    stopped = report.stopped
    if stopped is not None and stopped.outcome == "chat_error":
        kept = f" ({summary['pending']} message(s) kept in the outbox)" if summary["pending"] else ""
        raise ConfigError(f"{stopped.error}: {stopped.fix}{kept}")
    ours = {q.id for q in queued}
    ours_rejected = [err for i, err in report.rejected if i in ours]
    if ours_rejected:
        raise ConfigError(ours_rejected[0])
    undelivered = summary["status"] == "queued" or (summary["status"] == "flushed" and stopped is not None)
    if not held and summary["status"] in ("queued", "flushed"):
        raise NotifyError(f"another coin notify is still delivering; the message is kept in the outbox "
                          f"{summary['outbox']} ({summary['pending']} pending) and goes out with the next "
                          "`coin notify` or `coin notify --flush`")
    if undelivered:
        reason = stopped.error if stopped is not None else "not sent"
        tries = f" after {stopped.attempts} attempt(s)" if stopped is not None and stopped.attempts else ""
        raise NotifyError(f"not delivered{tries}: {reason}; kept in the outbox {summary['outbox']} "
                          f"({summary['pending']} pending), the next `coin notify` or `coin notify --flush` "
                          "sends it first")
