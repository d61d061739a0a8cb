"""Alert text: escaping, the unified header, splitting over-long messages, collapse keys."""

from __future__ import annotations

from datetime import UTC, datetime

from coin_cli.monitoring.messages import (
    MAX_MESSAGE_CHARS,
    alert_header,
    build_parts,
    count_suffix,
    telegram_length,
)
from coin_cli.monitoring.notifier import Alert
from tests.fakes.telegram_api import html_text_length

MOMENT = datetime(2026, 11, 24, 21, 17, 0, tzinfo=UTC)


def test_html_escapes_the_three_reserved_characters_and_keeps_header_markup():
    parts = build_parts("BTC <up> & ETH > 3", chat_id="42", parse_mode="html", code="PRICE", host="box",
                        moment=MOMENT)
    assert [p.text for p in parts] == ["<b>[PRICE] box 2026-11-24 21:17:00 UTC</b>\nBTC &lt;up&gt; &amp; ETH &gt; 3"]
    assert html_text_length(parts[0].text) == len("[PRICE] box 2026-11-24 21:17:00 UTC\nBTC <up> & ETH > 3")


def test_plain_mode_sends_text_unchanged_and_header_matches_alert_format():
    alert = Alert(code="DRAWDOWN", text="a <b> & c", host="box", time=MOMENT)
    parts = build_parts(alert.text, chat_id="42", parse_mode="none", code=alert.code, host=alert.host,
                        moment=alert.time)
    assert parts[0].text == alert.format()
    assert alert_header("DRAWDOWN", "box", MOMENT) == alert.format().splitlines()[0]


def test_5000_characters_split_on_line_boundaries_into_numbered_parts():
    lines = [f"line {i:04d} " + "x" * 40 for i in range(100)]  # 100 lines of 50 chars = 5099 chars
    text = "\n".join(lines)
    parts = build_parts(text, chat_id="42", parse_mode="html")
    assert len(parts) == 2
    assert parts[0].text.startswith("(1/2)\n") and parts[1].text.startswith("(2/2)\n")
    assert all(telegram_length(p.text) <= MAX_MESSAGE_CHARS for p in parts)
    body = [p.text.split("\n", 1)[1] for p in parts]
    assert "\n".join(body) == text  # nothing lost, nothing cut inside a line
    assert len({p.dedupe_key for p in parts}) == 2


def test_a_single_overlong_line_is_cut_without_breaking_an_entity():
    text = "&" * 6000  # escapes to 30000 characters
    parts = build_parts(text, chat_id="42", parse_mode="html", code="X", host="h", moment=MOMENT)
    assert len(parts) > 1
    for part in parts:
        assert telegram_length(part.text) <= MAX_MESSAGE_CHARS
        assert isinstance(html_text_length(part.text), int)  # still valid HTML for Telegram
    assert sum(p.text.count("&amp;") for p in parts) == 6000


def test_characters_outside_the_bmp_count_twice():
    assert telegram_length("a🚀") == 3
    parts = build_parts("🚀" * 3000, chat_id="42", parse_mode="none")
    assert len(parts) == 2


def test_dedupe_key_ignores_time_but_not_chat_code_text_or_silence():
    def key(**kw):
        args = {"chat_id": "42", "parse_mode": "html", "code": "C", "host": "h", "moment": MOMENT, "silent": False}
        args.update(kw)
        return build_parts(args.pop("text", "disk full"), **args)[0].dedupe_key

    assert key() == key(moment=datetime(2027, 1, 1, tzinfo=UTC))
    assert len({key(), key(chat_id="43"), key(code="D"), key(text="disk ok"), key(silent=True)}) == 5


def test_count_suffix():
    assert count_suffix(1, 0.0, 0.0, repeat=False) == ""
    assert count_suffix(3, 0.0, 65.0, repeat=False) == "\n(repeated 3× between 00:00:00 and 00:01:05 UTC)"
    assert count_suffix(1, 60.0, 60.0, repeat=True) == "\n(repeated again 1× at 00:01:00 UTC)"
