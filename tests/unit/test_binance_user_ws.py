"""The user-stream classifier on Binance's documented payloads (tests/data/binance_user/): wrapped
`{"subscriptionId","event"}`, combined `{"stream","data"}`, bare events, serverShutdown without a
subscriptionId; python-binance's in-band error dicts are recognised; missing keys are named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coin_cli.config import Secrets
from coin_cli.errors import UsageError
from coin_cli.integrations.binance.user_stream_service import require_keys
from coin_cli.integrations.binance.user_ws import UserStreamEvent, classify, is_error_dict, unwrap

DATA = Path(__file__).resolve().parents[1] / "data" / "binance_user"


def _load(name: str) -> dict:
    return json.loads((DATA / name).read_text())


@pytest.mark.parametrize(("name", "event_type", "e"), [
    ("user_outboundAccountPosition.json", "outboundAccountPosition", "outboundAccountPosition"),
    ("wsapi_event_outboundAccountPosition.json", "outboundAccountPosition", "outboundAccountPosition"),
    ("user_executionReport_new.json", "executionReport", "executionReport"),
    ("user_executionReport_trade_partial_1.json", "executionReport", "executionReport"),
    ("user_balanceUpdate.json", "balanceUpdate", "balanceUpdate"),
    ("user_listStatus.json", "other", "listStatus"),
    ("user_externalLockUpdate.json", "other", "externalLockUpdate"),
    ("user_eventStreamTerminated.json", "other", "eventStreamTerminated"),
    ("wsapi_serverShutdown.json", "other", "serverShutdown"),
    ("user_listenKeyExpired_LEGACY.json", "other", "listenKeyExpired"),
])
def test_each_documented_payload_is_classified_and_kept_raw(name: str, event_type: str, e: str) -> None:
    message = _load(name)
    inner = message.get("event", message)   # what the file itself says is the event
    event = classify(message)
    assert event == UserStreamEvent(event_type, inner)
    assert event.name == e == inner["e"]


def test_combined_stream_payloads_are_unwrapped() -> None:
    position = _load("user_outboundAccountPosition.json")["event"]
    assert classify({"stream": "userData", "data": position}) == UserStreamEvent("outboundAccountPosition", position)


def test_the_market_order_sequence_keeps_its_order_and_fields() -> None:
    sequence = _load("user_market_order_sequence_wrapped.json")
    events = [classify(m) for m in sequence]
    assert [e.event_type for e in events] == ["executionReport"] * 4 + ["outboundAccountPosition"]
    assert [(e.payload["x"], e.payload["X"], e.payload["z"]) for e in events[:4]] == [
        ("NEW", "NEW", "0.00000000"), ("TRADE", "PARTIALLY_FILLED", "2.00000000"),
        ("TRADE", "PARTIALLY_FILLED", "4.00000000"), ("EXPIRED", "EXPIRED", "4.00000000")]


def test_unwrap_leaves_a_bare_event_alone() -> None:
    bare = _load("user_listenKeyExpired_LEGACY.json")
    assert unwrap(bare) is bare


def test_python_binance_error_dicts_are_recognised() -> None:
    assert is_error_dict({"e": "error", "type": "BinanceWebsocketClosed", "m": "Connection closed. Reconnecting..."})
    assert not is_error_dict(_load("user_balanceUpdate.json")["event"])


def test_missing_keys_name_both_variables_and_a_full_pair_passes() -> None:
    with pytest.raises(UsageError, match="BINANCE_API_KEY, BINANCE_API_SECRET"):
        require_keys(Secrets.from_env({}))
    with pytest.raises(UsageError, match="BINANCE_API_SECRET") as info:
        require_keys(Secrets.from_env({"BINANCE_API_KEY": "abcd1234"}))
    assert "abcd1234" not in str(info.value)
    assert require_keys(Secrets.from_env({"BINANCE_API_KEY": "k", "BINANCE_API_SECRET": "s"})) == ("k", "s")
