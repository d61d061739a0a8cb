"""OutboxNotifier: the runtime's alerts go through the outbox on a background thread."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from coin_cli.config import PathsConfig, Secrets, Settings, TelegramConfig
from coin_cli.monitoring.notifier import Alert, LogNotifier
from coin_cli.monitoring.outbox import Outbox
from coin_cli.monitoring.telegram_notifier import OutboxNotifier, notifier_from_settings
from tests.fakes.telegram_api import FakeBotAPI

TOKEN = "123456:TEST-TOKEN-notifier"
SECRETS = Secrets(telegram_bot_token=TOKEN, telegram_chat_id="42")


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBotAPI]:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")
    server = FakeBotAPI(tokens=[TOKEN], known_chats=["42"]).start_in_thread()
    yield server
    server.stop_thread()


def settings_for(tmp_path: Path, url: str, **telegram) -> Settings:
    options = {"api_url": url, "min_interval": 0.05, "backoff_base": 0.01, "backoff_cap": 0.05,
               "max_attempts": 2, "read_timeout": 5.0, "connect_timeout": 1.0}
    options.update(telegram)
    return Settings(paths=PathsConfig(runs_dir=tmp_path / "runs"), telegram=TelegramConfig(**options))


def alert(code: str, text: str) -> Alert:
    return Alert(code=code, text=text, host="bot-host", time=datetime(2026, 11, 24, 12, 0, tzinfo=UTC))


def test_without_token_or_chat_the_runtime_gets_a_log_notifier(tmp_path: Path):
    settings = settings_for(tmp_path, "http://127.0.0.1:9/bot")
    assert isinstance(notifier_from_settings(settings, Secrets()), LogNotifier)
    assert isinstance(notifier_from_settings(settings, Secrets(telegram_bot_token=TOKEN)), LogNotifier)


def test_alerts_are_delivered_in_order_in_the_unified_format(tmp_path: Path, fake: FakeBotAPI):
    notifier = notifier_from_settings(settings_for(tmp_path, fake.base_url), SECRETS)
    assert isinstance(notifier, OutboxNotifier)
    notifier.notify(alert("DRAWDOWN", "drawdown 12% > 10%"))
    notifier.notify(alert("HALTED", "risk halt: <flatten>"))
    notifier.notify(Alert(code="INFO", text="fyi", severity="info"))
    notifier.close(timeout=20)
    texts = [m["text"] for m in fake.messages]
    assert texts[:2] == ["<b>[DRAWDOWN] bot-host 2026-11-24 12:00:00 UTC</b>\ndrawdown 12% &gt; 10%",
                         "<b>[HALTED] bot-host 2026-11-24 12:00:00 UTC</b>\nrisk halt: &lt;flatten&gt;"]
    assert [m["disable_notification"] for m in fake.messages] == ["false", "false", "true"]
    assert notifier.stats["sent"] == 3


def test_notify_returns_while_telegram_is_still_answering(tmp_path: Path, fake: FakeBotAPI):
    fake.fail_next("slow", delay=1.5)
    notifier = OutboxNotifier(settings_for(tmp_path, fake.base_url), SECRETS)
    notifier.notify(alert("A", "first"))
    notifier.notify(alert("B", "second"))
    assert notifier.stats["sent"] == 0  # notify handed the alerts over and returned
    notifier.close(timeout=20)
    assert [m["text"].split("\n")[1] for m in fake.messages] == ["first", "second"]


def test_undeliverable_alerts_stay_in_the_outbox(tmp_path: Path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = settings_for(tmp_path, f"http://127.0.0.1:{port}/bot")
    notifier = OutboxNotifier(settings, SECRETS)
    for i in range(3):
        notifier.notify(alert(f"C{i}", f"alert {i}"))
    notifier.close(timeout=3)
    box = Outbox(tmp_path / "runs" / "outbox.sqlite")
    try:
        pending = box.messages("pending")
    finally:
        box.close()
    assert [m.text.split("\n")[1] for m in pending] == ["alert 0", "alert 1", "alert 2"]
    assert pending[0].attempts >= 2 and "ConnectError" in pending[0].last_error


def test_a_burst_of_identical_alerts_becomes_one_message_and_no_occurrence_is_lost(tmp_path: Path,
                                                                                   fake: FakeBotAPI):
    notifier = OutboxNotifier(settings_for(tmp_path, fake.base_url), SECRETS)
    for _ in range(5):
        notifier.notify(alert("STALE_DATA", "no candle for 2 intervals"))
    notifier.close(timeout=10)
    box = Outbox(tmp_path / "runs" / "outbox.sqlite")
    try:
        rows = box.messages()
    finally:
        box.close()
    assert len(fake.messages) == 1
    assert sum(r.count for r in rows) == 5  # the sent one plus the repeat waiting for its window
    assert rows[0].status == "sent"
