"""TelegramSender (python-telegram-bot 22) against the loopback fake Bot API: each retry case."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from coin_cli.config import redact_values
from coin_cli.integrations.telegram import RetryPolicy, TelegramSender, is_loopback
from tests.fakes.telegram_api import FakeBotAPI

TOKEN = "123456:TEST-TOKEN-sender"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBotAPI]:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    server = FakeBotAPI(tokens=[TOKEN], known_chats=["42", "-100"]).start_in_thread()
    yield server
    server.stop_thread()


def sender_for(url: str, token: str = TOKEN, read_timeout: float = 5.0, **policy: float) -> TelegramSender:
    args = {"max_attempts": 3, "retry_after_cap": 2.0, "backoff_base": 0.01, "backoff_cap": 0.02}
    args.update(policy)
    return TelegramSender(token, api_url=url, read_timeout=read_timeout, connect_timeout=1.0,
                          policy=RetryPolicy(jitter=lambda: 1.0, **args))


def test_normal_send_html_silent_no_link_preview(fake: FakeBotAPI):
    result = sender_for(fake.base_url).send("42", "<b>hi</b> &amp; bye", silent=True)
    assert result.outcome == "sent" and result.attempts == 1 and result.message_id == 1
    msg = fake.messages[0]
    assert msg["parse_mode"] == "HTML" and msg["disable_notification"] == "true"
    assert msg["link_preview_options"] == '{"is_disabled": true}'
    assert [r["method"] for r in fake.requests] == ["sendMessage"]  # one round trip, no getMe


def test_plain_mode_sends_no_parse_mode(fake: FakeBotAPI):
    assert sender_for(fake.base_url).send("42", "a < b", parse_mode="none").outcome == "sent"
    assert fake.messages[0]["parse_mode"] is None


def test_retry_after_waits_and_retries(fake: FakeBotAPI):
    fake.fail_next("429", retry_after=1)
    result = sender_for(fake.base_url).send("42", "flood")
    assert result.outcome == "sent" and result.attempts == 2
    sends = [r for r in fake.requests if r["method"] == "sendMessage"]
    assert sends[1]["at"] - sends[0]["at"] >= 0.95  # honoured the server's retry_after


def test_retry_after_beyond_the_cap_is_left_for_later(fake: FakeBotAPI):
    fake.fail_next("429", retry_after=60)
    result = sender_for(fake.base_url).send("42", "flood")
    assert result.outcome == "retry_later" and result.attempts == 1
    assert result.retry_at is not None and "wait 60 s" in result.error
    assert fake.messages == []


@pytest.mark.parametrize("kind", ["502", "502html"])
def test_server_errors_are_retried_with_backoff(fake: FakeBotAPI, kind: str):
    fake.fail_next(kind, times=2)
    result = sender_for(fake.base_url).send("42", "x")
    assert result.outcome == "sent" and result.attempts == 3 and result.timeouts == 0
    assert len(fake.messages) == 1


def test_server_errors_exhaust_the_attempts(fake: FakeBotAPI):
    fake.fail_next("502html", times=5)
    result = sender_for(fake.base_url).send("42", "x")
    assert result.outcome == "retry_later" and result.attempts == 3
    assert result.error == "network error: Bad Gateway (502)"  # not the HTML page


def test_nothing_listening_is_retried_then_left_for_later():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: connection refused
    result = sender_for(f"http://127.0.0.1:{port}/bot").send("42", "x")
    assert result.outcome == "retry_later" and result.attempts == 3 and result.timeouts == 0
    assert "ConnectError" in result.error


def test_timed_out_is_retried_and_counted_as_a_possible_duplicate(fake: FakeBotAPI):
    fake.fail_next("slow", delay=1.5)
    result = sender_for(fake.base_url, read_timeout=0.3).send("42", "maybe twice")
    assert result.outcome == "sent" and result.attempts == 2 and result.timeouts == 1
    assert [m["text"] for m in fake.messages] == ["maybe twice", "maybe twice"]  # the documented trade-off


def test_dropped_connection_counts_as_possible_duplicate(fake: FakeBotAPI):
    fake.fail_next("drop")
    result = sender_for(fake.base_url).send("42", "x")
    assert result.outcome == "sent" and result.timeouts == 1


@pytest.mark.parametrize(("kind", "opts", "outcome", "fix_part"), [
    ("401", {}, "chat_error", "TELEGRAM_BOT_TOKEN"),
    ("403", {}, "chat_error", "unblock the bot"),
    ("400", {}, "chat_error", "TELEGRAM_CHAT_ID"),
    ("migrate", {"new_chat_id": -1001234567890}, "chat_error", "-1001234567890"),
    ("400", {"description": "Bad Request: can't parse entities: xyz"}, "rejected", "--parse-mode none"),
])
def test_configuration_errors_are_never_retried(fake: FakeBotAPI, kind, opts, outcome, fix_part):
    fake.fail_next(kind, **opts)
    result = sender_for(fake.base_url).send("42", "x")
    assert result.outcome == outcome and result.attempts == 1
    assert fix_part in result.fix
    assert len([r for r in fake.requests if r["method"] == "sendMessage"]) == 1
    if kind == "migrate":
        assert result.new_chat_id == "-1001234567890"


def test_unknown_chat_and_wrong_token_from_the_server_itself(fake: FakeBotAPI):
    assert sender_for(fake.base_url).send("7", "x").outcome == "chat_error"
    wrong = "999999:WRONG-TOKEN-value"
    result = sender_for(fake.base_url, token=wrong).send("42", "x")
    assert result.outcome == "chat_error" and "TELEGRAM_BOT_TOKEN" in result.fix
    assert wrong not in (result.error or "") + (result.fix or "")


def test_redaction_and_loopback_detection():
    assert redact_values("url /bot123456:ABC/sendMessage", ["123456:ABC", None]) == "url /bot***/sendMessage"
    assert redact_values("GET /bot123456%3AABC/x", ["123456:ABC"]) == "GET /bot***/x"
    assert is_loopback("http://127.0.0.1:8/bot") and is_loopback("http://localhost/bot")
    assert not is_loopback("https://api.telegram.org/bot")


def test_one_sender_works_across_event_loops(fake: FakeBotAPI):
    sender = sender_for(fake.base_url)
    assert [sender.send("42", f"run {i}").outcome for i in range(3)] == ["sent"] * 3
    assert len(fake.messages) == 3
