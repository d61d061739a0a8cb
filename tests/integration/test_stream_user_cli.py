"""`coin stream user` end to end: the real `coin` in a subprocess against the loopback fake's WebSocket
API user data stream (`/ws-api/v3`). Events are produced on the fake (orders, deposits, OCO status,
external locks, a terminated stream) and compared with what the fake says it sent (`sent_events`):
every one classified, printed and recorded once, in order; a dropped WS-API socket is re-subscribed
with a resync marker; the keys appear nowhere; without keys exit 2; an unreachable WS API exit 4."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import clean_env
from tests.fakes.binance import FakeBinance
from tests.fakes.binance.account import setup_account

KEY, SECRET = "k3yUserStreamTest0001", "s3cretUserStreamTest0001zz"
TYPES = {"executionReport", "outboundAccountPosition", "balanceUpdate"}
pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def fake() -> Iterator[FakeBinance]:
    server = FakeBinance()
    with server.run_in_thread():
        setup_account(server, KEY, SECRET, balances={"USDT": "10000"})
        server.state["symbols"] = ["BTCUSDT"]
        server.orders.set_price("BTCUSDT", "50000")
        yield server


def _start(workdir: Path, fake: FakeBinance, *args: str, keys: bool = True, ws_api_url: str | None = None,
           ) -> subprocess.Popen[str]:
    env = {"COIN_BINANCE__API_URL": fake.api_url, "COIN_BINANCE__WS_API_URL": ws_api_url or fake.ws_api_url,
           "COIN_BINANCE__RECONNECT_BASE": "0.05", "COIN_BINANCE__RECONNECT_CAP": "0.2",
           "COIN_BINANCE__TIMEOUT": "3"}
    if keys:
        env.update(BINANCE_API_KEY=KEY, BINANCE_API_SECRET=SECRET)
    return subprocess.Popen([sys.executable, "-m", "coin_cli", "stream", "user", "--json", *args], cwd=workdir,
                            env=clean_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _subscribed(fake: FakeBinance, attempts: int = 1) -> Callable[[], bool]:
    """A live subscription after at least `attempts` subscribe requests."""
    def check() -> bool:
        asked = sum(r.get("method") == "userDataStream.subscribe.signature" for r in list(fake.ws_api.requests))
        return asked >= attempts and any(s.subscriptions for s in list(fake.ws_api.sessions))
    return check


def _read(proc: subprocess.Popen[str], on_line: Callable[[dict], None] | None = None) -> tuple[list[dict], dict, str]:
    assert proc.stdout is not None
    events: list[dict] = []
    for line in proc.stdout:
        obj = json.loads(line)
        if "run_id" in obj:
            out_rest, err = proc.communicate(timeout=30)
            assert out_rest == ""   # the summary is the last line
            return events, obj, err
        events.append(obj)
        if on_line is not None:
            on_line(obj)
    _, err = proc.communicate(timeout=30)
    raise AssertionError(f"no summary; exit {proc.returncode}: {err}")


def _expected_type(payload: dict) -> str:
    return payload["e"] if payload["e"] in TYPES else "other"


def _run_folder(workdir: Path, run_id: str) -> Path:
    [folder] = [p for p in (workdir / "runs").rglob(run_id) if p.is_dir()] or [workdir / "runs" / run_id]
    return folder


def _assert_no_secret(workdir: Path, *texts: str) -> None:
    for text in texts:
        assert SECRET not in text and KEY not in text
    for path in (workdir / "runs").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert SECRET.encode() not in data and KEY.encode() not in data, path


def test_ten_classified_events_printed_and_recorded(workdir: Path, fake: FakeBinance) -> None:
    proc = _start(workdir, fake, "--max-events", "10", "--duration", "40")
    _wait(_subscribed(fake), "the subscription")
    fake.orders.place_by_hand("BTCUSDT", "BUY", "MARKET", "0.01")      # executionReport NEW, TRADE + position
    fake.ws_api.balance_update("USDT", "25")                           # balanceUpdate + position
    fake.ws_api.list_status("BTCUSDT")
    fake.ws_api.external_lock_update("USDT", "1.5")
    _wait(lambda: len(fake.ws_api.sent_events) >= 7, "the fake's events")
    before = len(fake.ws_api.sent_events)
    fake.ws_api.terminate_streams()                                    # eventStreamTerminated -> re-subscribe
    _wait(_subscribed(fake, 2), "the re-subscription")
    fake.orders.place_by_hand("BTCUSDT", "SELL", "MARKET", "0.005")
    events, summary, err = _read(proc)

    assert proc.returncode == 0, err
    sent = fake.ws_api.sent_events
    exchange = [e for e in events if "e" in e["payload"]]
    assert len(exchange) == 10 == summary["events"]
    assert [e["payload"] for e in exchange] == sent[:10]        # every event once, in order, raw
    assert [e["event_type"] for e in exchange] == [_expected_type(p) for p in sent[:10]]
    names = {e["payload"]["e"] for e in exchange}
    assert {"executionReport", "outboundAccountPosition", "balanceUpdate", "listStatus", "externalLockUpdate",
            "eventStreamTerminated"} <= names
    assert sent[before]["e"] == "eventStreamTerminated"
    markers = [e["event_type"] for e in events if "e" not in e["payload"]]
    assert markers == ["stream_down", "stream_up", "resync"]
    assert summary["subscriptions"] == 2 and summary["resubscribe_reasons"] == ["eventStreamTerminated"]
    recorded = [json.loads(line) for line in
                (_run_folder(workdir, summary["run_id"]) / "events.jsonl").read_text().splitlines()]
    assert recorded == events
    _assert_no_secret(workdir, err, json.dumps(events), json.dumps(summary))


def test_ws_api_drop_resubscribes_and_loses_or_doubles_nothing(workdir: Path, fake: FakeBinance) -> None:
    proc = _start(workdir, fake, "--max-events", "6", "--duration", "40")
    _wait(_subscribed(fake), "the subscription")
    fake.ws_api.balance_update("USDT", "10")        # 2 events
    _wait(lambda: len(fake.ws_api.sent_events) >= 2, "the first events")
    time.sleep(0.3)
    connects = fake.ws_api.connects
    assert fake.ws_api.drop("abort") == 1
    _wait(lambda: fake.ws_api.connects > connects and _subscribed(fake, 2)(), "the new subscription", 30)
    fake.ws_api.balance_update("USDT", "20")        # 2 events
    fake.orders.place_by_hand("BTCUSDT", "BUY", "MARKET", "0.001")   # 3 events
    events, summary, err = _read(proc)

    assert proc.returncode == 0, err
    exchange = [e["payload"] for e in events if "e" in e["payload"]]
    assert exchange == fake.ws_api.sent_events[:6]
    marker_at = [i for i, e in enumerate(events) if e["event_type"] == "resync"]
    assert len(marker_at) == 1 and [e["event_type"] for e in events[:marker_at[0]] if "e" not in e["payload"]] \
        == ["stream_down", "stream_up"]
    assert summary["resyncs"] == 1 and summary["subscriptions"] == 2
    _assert_no_secret(workdir, err)


def test_missing_keys_exit_2_naming_them(workdir: Path, fake: FakeBinance) -> None:
    proc = _start(workdir, fake, "--max-events", "1", keys=False)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "BINANCE_API_KEY" in err and "BINANCE_API_SECRET" in err and err.count("error:") == 1
    assert fake.ws_api.connects == 0


def test_unreachable_ws_api_exit_4_naming_it(workdir: Path, fake: FakeBinance) -> None:
    import socket

    with socket.socket() as s:   # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"ws://127.0.0.1:{port}/ws-api/v3"
    proc = _start(workdir, fake, "--max-events", "1", ws_api_url=url)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 4, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and url in lines[0], err
    _assert_no_secret(workdir, out, err)


def test_sigterm_prints_the_summary_and_exits_143(workdir: Path, fake: FakeBinance) -> None:
    import signal

    proc = _start(workdir, fake)
    _wait(_subscribed(fake), "the subscription")
    fake.ws_api.external_lock_update("USDT", "2")
    assert proc.stdout is not None
    first = json.loads(proc.stdout.readline())
    assert first["payload"] == fake.ws_api.sent_events[0]
    proc.send_signal(signal.SIGTERM)
    events, summary, err = _read(proc)
    assert proc.returncode == 143, err
    assert events == [] and summary["stopped"] == "SIGTERM" and summary["events"] == 1
    recorded = (_run_folder(workdir, summary["run_id"]) / "events.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in recorded] == [first]


def test_server_shutdown_is_recorded_and_resubscribed(workdir: Path, fake: FakeBinance) -> None:
    proc = _start(workdir, fake, "--max-events", "3", "--duration", "40")
    _wait(_subscribed(fake), "the subscription")
    fake.ws_api.server_shutdown()          # no subscriptionId: python-binance alone would drop it
    _wait(_subscribed(fake, 2), "the re-subscription")
    fake.ws_api.balance_update("USDT", "3")
    events, summary, err = _read(proc)
    assert proc.returncode == 0, err
    assert [e["event_type"] for e in events] == ["other", "stream_down", "stream_up", "resync",
                                                 "balanceUpdate", "outboundAccountPosition"]
    assert events[0]["payload"]["e"] == "serverShutdown"
    # the old subscription's own unsubscribe (on leaving its socket) ends it with an
    # eventStreamTerminated that nobody listens to any more; everything else arrived
    sent = [e for e in fake.ws_api.sent_events if e["e"] != "eventStreamTerminated"]
    assert [e["payload"] for e in events[4:]] == sent
    assert summary["resubscribe_reasons"] == ["serverShutdown"]
