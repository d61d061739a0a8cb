"""The alert value and the notifier seam between the runtime's AlertEngine and delivery
(a log line until Telegram is configured; the Telegram outbox otherwise)."""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol


@dataclass(frozen=True)
class Alert:
    code: str                      # DRAWDOWN, HALTED, STALE_DATA, ORDER_REJECTED, ...
    text: str
    severity: str = "warning"      # info | warning | critical
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    host: str = field(default_factory=socket.gethostname)

    def format(self) -> str:
        """The unified alert text shared by `coin notify --code` and the runtime."""
        return f"[{self.code}] {self.host} {self.time.strftime('%Y-%m-%d %H:%M:%S')} UTC\n{self.text}"


class Notifier(Protocol):
    """Delivery of alerts. `notify` must return at once: the trading loop never waits on it."""

    def notify(self, alert: Alert) -> None: ...

    def close(self, timeout: float = 5.0) -> None: ...


class LogNotifier:
    """Writes alerts to the `coin.alerts` logger (stderr)."""

    def __init__(self) -> None:
        self.sent: list[Alert] = []
        self._log = logging.getLogger("coin.alerts")

    def notify(self, alert: Alert) -> None:
        self.sent.append(alert)
        self._log.warning("%s %s", alert.code, alert.text)

    def close(self, timeout: float = 5.0) -> None:
        return None
