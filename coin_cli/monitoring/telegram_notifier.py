"""The runtime's Telegram notifier: `notify(alert)` hands the alert to a background thread and
returns at once; the thread writes it to the durable outbox (the same one `coin notify` uses)
and delivers with the same pacing, collapse and retry rules. The trading loop never waits on
Telegram; an alert that cannot be delivered stays in the outbox for the next run or
`coin notify --flush`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import TYPE_CHECKING, Any

from coin_cli.monitoring.notifier import Alert, LogNotifier, Notifier

if TYPE_CHECKING:
    from coin_cli.config import Secrets, Settings
    from coin_cli.monitoring.outbox import Outbox

log = logging.getLogger("coin.alerts")

IDLE_POLL_S = 5.0          # re-check the outbox this often when idle (other processes may add to it)
CHAT_ERROR_PAUSE_S = 300.0  # after a configuration error from Telegram, try again this much later


class OutboxNotifier:
    """Notifier protocol on top of the Telegram outbox (see module docstring)."""

    def __init__(self, settings: Settings, secrets: Secrets | None = None):
        from coin_cli.config import Secrets
        from coin_cli.monitoring.delivery import destination, outbox_path

        self._token, self.chat_id = destination(settings, secrets or Secrets.from_env())
        self._telegram = settings.telegram
        self.outbox_path = outbox_path(settings)
        self._inbox: queue.SimpleQueue[Alert] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._deadline = float("inf")
        self.stats: dict[str, Any] = {"queued": 0, "persisted": 0, "sent": 0, "rejected": 0, "possible_duplicates": 0,
                                      "last_error": None}
        self._thread = threading.Thread(target=self._run, name="coin-telegram-outbox", daemon=True)
        self._thread.start()

    # ---- Notifier protocol ---------------------------------------------------------------------
    def notify(self, alert: Alert) -> None:
        self._inbox.put(alert)  # unbounded, lock-free for the caller
        self.stats["queued"] += 1
        self._wake.set()

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what can go within `timeout`; everything else is (or is made) durable in the outbox."""
        self._deadline = time.monotonic() + timeout
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive() and not self._inbox.empty():
            from coin_cli.monitoring.outbox import Outbox

            outbox = Outbox(self.outbox_path)  # the thread is stuck in a send: persist the rest here
            try:
                self._persist(outbox)
            finally:
                outbox.close()

    # ---- background thread ---------------------------------------------------------------------
    def _persist(self, outbox: Outbox) -> None:
        from coin_cli.monitoring.messages import build_parts

        tg = self._telegram
        while True:
            try:
                alert = self._inbox.get_nowait()
            except queue.Empty:
                return
            silent = alert.severity == "info"
            parts = build_parts(alert.text, chat_id=self.chat_id, parse_mode=tg.parse_mode, silent=silent,
                                code=alert.code, host=alert.host, moment=alert.time)
            outbox.enqueue(self.chat_id, [(p.text, p.dedupe_key) for p in parts], parse_mode=tg.parse_mode,
                           silent=silent, dedupe_window=tg.dedupe_window, source="runtime")
            self.stats["persisted"] += 1
            log.info("alert %s queued for Telegram", alert.code)

    def _run(self) -> None:
        from coin_cli.integrations.telegram import TelegramSender
        from coin_cli.monitoring.outbox import Outbox

        try:
            outbox = Outbox(self.outbox_path)
        except Exception as exc:  # e.g. a corrupt outbox file: say so once; trading goes on
            log.error("Telegram alerts are not delivered: %s", exc)
            return
        sender = TelegramSender.from_settings(self._token, self._telegram)
        paused_until = 0.0
        failures = 0
        try:
            while True:
                self._persist(outbox)
                closing = self._closing.is_set()
                if closing and time.monotonic() >= self._deadline:
                    return
                wait = IDLE_POLL_S
                if time.time() >= paused_until and outbox.next_due(self.chat_id) is not None:
                    pause = self._pass(outbox, sender)
                    if pause is None:
                        failures = 0
                    else:
                        failures += 1
                        paused_until = time.time() + pause * min(failures, 6)
                if closing:
                    if time.time() < paused_until or outbox.next_due(self.chat_id) is None:
                        return
                    continue
                wake = outbox.next_wake(self.chat_id)
                if wake is not None:
                    wait = min(wait, max(0.05, wake - time.time(), paused_until - time.time()))
                self._wake.wait(wait)
                self._wake.clear()
        except Exception as exc:  # the trading loop must go on; the outbox keeps the alerts
            log.error("Telegram delivery thread stopped: %s", sender.redact(f"{type(exc).__name__}: {exc}"))
        finally:
            outbox.close()

    def _pass(self, outbox: Outbox, sender: Any) -> float | None:
        """One delivery pass; returns how long to pause before the next one after a failure."""
        from coin_cli.errors import CoinError
        from coin_cli.monitoring.delivery import deliver

        def between() -> bool:
            self._persist(outbox)
            return time.monotonic() >= self._deadline

        with outbox.delivery_lock(wait=0) as held:
            if not held:  # a `coin notify` is delivering (our alerts too, if for the same chat)
                return 1.0
            try:
                report = deliver(outbox, sender, self.chat_id, self._telegram, between=between)
            except CoinError as exc:
                self.stats["last_error"] = str(exc)
                log.warning("Telegram delivery failed: %s", exc)
                return self._telegram.backoff_cap or 1.0
        self.stats["sent"] += len(report.sent)
        self.stats["rejected"] += len(report.rejected)
        self.stats["possible_duplicates"] += report.timeouts
        for _, error in report.rejected:
            log.warning("Telegram rejected an alert (kept in %s): %s", outbox.path, error)
        stopped = report.stopped
        if stopped is None:
            return None
        self.stats["last_error"] = stopped.error
        if stopped.outcome == "chat_error":
            log.error("Telegram alerts are not delivered: %s: %s", stopped.error, stopped.fix)
            if stopped.new_chat_id:
                self.chat_id = stopped.new_chat_id  # the group moved; its queued alerts moved with it
                return 0.0
            return CHAT_ERROR_PAUSE_S
        log.warning("Telegram alert not delivered yet (kept in the outbox): %s", stopped.error)
        if stopped.retry_at is not None:
            return max(0.0, stopped.retry_at - time.time())
        return max(self._telegram.backoff_cap, 1.0)


def notifier_from_settings(settings: Settings, secrets: Secrets | None = None) -> Notifier:
    """OutboxNotifier when TELEGRAM_BOT_TOKEN and a chat id are set, else LogNotifier."""
    from coin_cli.config import Secrets

    secrets = secrets or Secrets.from_env()
    if secrets.telegram_bot_token and (secrets.telegram_chat_id or settings.telegram.chat_id):
        return OutboxNotifier(settings, secrets)
    return LogNotifier()
