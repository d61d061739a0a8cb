"""`coin notify` end to end: the real command in a subprocess against the loopback fake Bot API."""

from __future__ import annotations

import itertools
import json
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import clean_env, last_line, run_coin
from tests.fakes.telegram_api import FakeBotAPI, FakeBotAPIProcess

TOKEN = "123456:TEST-TOKEN-cli-4f9a2b"
NEW_CHAT = "-1009876543210"
RUN_ID = re.compile(r"^\d{8}T\d{6}Z-notify-[0-9a-f]{6}$")
HEAVY = ("torch", "stable_baselines3", "pandas", "pyarrow", "matplotlib")


@pytest.fixture
def fake() -> Iterator[FakeBotAPI]:
    server = FakeBotAPI(tokens=[TOKEN], known_chats=["42", NEW_CHAT]).start_in_thread()
    yield server
    server.stop_thread()


def tg_env(url: str, **extra: str) -> dict[str, str]:
    env = {"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_CHAT_ID": "42", "COIN_TELEGRAM__API_URL": url,
           "COIN_TELEGRAM__MIN_INTERVAL": "0", "COIN_TELEGRAM__BACKOFF_BASE": "0.01",
           "COIN_TELEGRAM__BACKOFF_CAP": "0.02", "COIN_TELEGRAM__RETRY_AFTER_CAP": "3",
           "COIN_TELEGRAM__MAX_ATTEMPTS": "3", "COIN_TELEGRAM__READ_TIMEOUT": "5"}
    env.update(extra)
    return env


@pytest.fixture
def notify(workdir: Path, fake: FakeBotAPI):
    """Run `coin notify ...`; after the test, check that no output and no file holds the token."""
    outputs: list[subprocess.CompletedProcess[str]] = []

    def _run(*args: str, input: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
        result = run_coin(["notify", *args], cwd=workdir, env=tg_env(fake.base_url, **env), input=input)
        outputs.append(result)
        return result

    yield _run
    assert_token_nowhere(TOKEN, workdir, outputs)


def assert_token_nowhere(token: str, workdir: Path, outputs: list[subprocess.CompletedProcess[str]]) -> None:
    for result in outputs:
        assert token not in result.stdout and token not in result.stderr
    files = [p for p in workdir.rglob("*") if p.is_file()]
    if any(r.returncode in (0, 4) for r in outputs):  # the grep below must cover the outbox
        assert any(p.suffix == ".sqlite" for p in files)
    for path in files:  # run folders, the outbox and its WAL
        assert token.encode() not in path.read_bytes(), path


def run_dir(workdir: Path, result: subprocess.CompletedProcess[str]) -> Path:
    run_id = last_line(result.stdout)
    assert RUN_ID.match(run_id), result.stdout
    return workdir / "runs" / run_id


def sent_texts(fake: FakeBotAPI) -> list[str]:
    return [m["text"] for m in fake.messages]


def one_line(stderr: str) -> str:
    return " ".join(stderr.split())


# ---- delivered ---------------------------------------------------------------------------------
def test_normal_send_writes_a_run_folder_and_prints_the_run_id_last(notify, fake, workdir):
    result = notify("backup done: 3 files <ok> & verified")
    assert result.returncode == 0, result.stderr
    assert sent_texts(fake) == ["backup done: 3 files &lt;ok&gt; &amp; verified"]
    folder = run_dir(workdir, result)
    delivery = json.loads((folder / "delivery.json").read_text())
    assert delivery["status"] == "delivered" and delivery["telegram_message_ids"] == [1]
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["status"] == "ok" and meta["exit_code"] == 0 and meta["command"] == "notify"
    assert (folder / "config.yaml").is_file()


def test_json_code_and_silent(notify, fake):
    result = notify("disk 91% full", "--code", "DISK_FULL", "--silent", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "delivered" and RUN_ID.match(summary["run_id"])
    message = fake.messages[0]
    assert re.fullmatch(r"<b>\[DISK_FULL\] \S+ \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</b>\ndisk 91% full", message["text"])
    assert message["disable_notification"] == "true"


def test_parse_mode_none_sends_text_verbatim(notify, fake):
    assert notify("a <b> & c", "--parse-mode", "none").returncode == 0
    assert fake.messages[0]["text"] == "a <b> & c" and fake.messages[0]["parse_mode"] is None


def test_stdin_with_a_code_and_secrets_in_the_piped_log_are_redacted(notify, fake):
    log = f"step 1 ok\nstep 2 FAILED: auth with {TOKEN} refused\n"
    result = notify("--stdin", "--code", "BACKUP_FAILED", input=log)
    assert result.returncode == 0, result.stderr
    text = fake.messages[0]["text"]
    assert text.endswith("\nstep 1 ok\nstep 2 FAILED: auth with *** refused")
    assert "[BACKUP_FAILED]" in text


def test_5000_characters_are_split_into_numbered_parts_in_order(notify, fake):
    lines = [f"row {i:03d} " + "y" * 42 for i in range(100)]
    result = notify("\n".join(lines), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["parts"] == 2
    texts = sent_texts(fake)
    assert [t.split("\n", 1)[0] for t in texts] == ["(1/2)", "(2/2)"]
    assert all(len(t) <= 4096 for t in texts)
    assert "\n".join(t.split("\n", 1)[1] for t in texts) == "\n".join(lines)


def test_identical_alert_is_collapsed_then_flushed_with_its_count(notify, fake):
    assert notify("same thing", "--code", "X").returncode == 0
    second = notify("same thing", "--code", "X", "--json")
    assert second.returncode == 0
    assert json.loads(second.stdout)["status"] == "collapsed" and len(fake.messages) == 1
    flushed = notify("--flush", "--json")
    assert flushed.returncode == 0 and json.loads(flushed.stdout)["backlog_sent"] == 1
    assert "(repeated again 1×" in fake.messages[1]["text"]


# ---- retried -----------------------------------------------------------------------------------
def test_429_retry_after_through_the_standalone_fake(workdir):
    with FakeBotAPIProcess(tokens=[TOKEN], chats=["42"]) as server:
        server.fail_next("429", retry_after=1)
        result = run_coin(["notify", "flood test", "--json"], cwd=workdir, env=tg_env(server.base_url))
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["attempts"] == 2
        assert [m["text"] for m in server.messages] == ["flood test"]
        sends = [r["at"] for r in server.requests if r["method"] == "sendMessage"]
    assert sends[1] - sends[0] >= 0.95
    assert_token_nowhere(TOKEN, workdir, [result])


def test_429_longer_than_the_cap_keeps_the_message_exit_4(notify, fake):
    fake.fail_next("429", retry_after=120)
    result = notify("flood", "--json")
    assert result.returncode == 4
    assert json.loads(result.stdout)["exit_code"] == 4
    assert "Telegram asks to wait 120 s" in one_line(result.stderr)
    assert fake.messages == []


@pytest.mark.parametrize("kind", ["502", "502html"])
def test_502_is_retried(notify, fake, kind):
    fake.fail_next(kind, times=2)
    result = notify("x", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["attempts"] == 3 and sent_texts(fake) == ["x"]


def test_502_html_until_the_attempts_run_out_is_exit_4_with_one_line(notify, fake):
    fake.fail_next("502html", times=50)
    result = notify("x")
    assert result.returncode == 4
    assert result.stderr.startswith("error: not delivered after 3 attempt(s): network error: Bad Gateway (502)")
    assert "<html>" not in result.stderr and "Traceback" not in result.stderr
    assert RUN_ID.match(last_line(result.stdout))


def test_slow_answer_beyond_the_read_timeout_is_resent_and_reported(notify, fake):
    fake.fail_next("slow", delay=2.0)
    result = notify("are you there", "--json", COIN_TELEGRAM__READ_TIMEOUT="0.4")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["possible_duplicates"] == 1
    assert "did not answer in time 1x; the message was sent again and may arrive twice" in one_line(result.stderr)
    assert sent_texts(fake) == ["are you there", "are you there"]  # alerts prefer a duplicate to a loss
    human = notify("second", COIN_TELEGRAM__READ_TIMEOUT="0.4")
    assert human.returncode == 0 and "may arrive twice" not in human.stderr


# ---- not retried: exit 2 with what to fix ------------------------------------------------------
def test_401_invalid_token(notify, fake):
    fake.fail_next("401")
    result = notify("x")
    assert result.returncode == 2
    assert "check TELEGRAM_BOT_TOKEN" in one_line(result.stderr)
    assert len(fake.requests) == 1


def test_wrong_token_never_appears_anywhere(workdir, fake):
    wrong = "777777:WRONG-TOKEN-zz9"
    result = run_coin(["notify", "x"], cwd=workdir, env=tg_env(fake.base_url, TELEGRAM_BOT_TOKEN=wrong))
    assert result.returncode == 2
    assert "Telegram rejected the bot token" in one_line(result.stderr)
    verbose = run_coin(["-v", "notify", "x"], cwd=workdir, env=tg_env(fake.base_url, TELEGRAM_BOT_TOKEN=wrong))
    assert verbose.returncode == 2
    assert_token_nowhere(wrong, workdir, [result, verbose])


def test_400_chat_not_found(notify, fake):
    result = notify("x", TELEGRAM_CHAT_ID="31337")
    assert result.returncode == 2
    assert "Chat not found" in result.stderr and "check TELEGRAM_CHAT_ID" in one_line(result.stderr)


def test_403_blocked(notify, fake):
    fake.fail_next("403")
    result = notify("x")
    assert result.returncode == 2
    assert "bot was blocked by the user" in one_line(result.stderr)


def test_chat_migrated_names_the_new_chat_and_the_message_follows_it(notify, fake):
    fake.fail_next("migrate", new_chat_id=int(NEW_CHAT))
    result = notify("group news")
    assert result.returncode == 2
    assert f"set TELEGRAM_CHAT_ID (or telegram.chat_id) to {NEW_CHAT}" in one_line(result.stderr)
    flushed = notify("--flush", "--json", TELEGRAM_CHAT_ID=NEW_CHAT)
    assert flushed.returncode == 0, flushed.stderr
    assert fake.messages[-1]["chat_id"] == NEW_CHAT and fake.messages[-1]["text"] == "group news"


def test_missing_token_or_chat_names_the_variables(workdir, fake):
    no_token = run_coin(["notify", "x"], cwd=workdir, env={"TELEGRAM_CHAT_ID": "42"})
    assert no_token.returncode == 2 and "TELEGRAM_BOT_TOKEN" in no_token.stderr
    no_chat = run_coin(["notify", "x"], cwd=workdir, env={"TELEGRAM_BOT_TOKEN": TOKEN})
    assert no_chat.returncode == 2 and "TELEGRAM_CHAT_ID" in one_line(no_chat.stderr)
    assert "telegram.chat_id" in one_line(no_chat.stderr)
    via_config = run_coin(["notify", "x"], cwd=workdir, env=tg_env(fake.base_url, TELEGRAM_CHAT_ID="",
                                                                      COIN_TELEGRAM__CHAT_ID="42"))
    assert via_config.returncode == 0, via_config.stderr
    assert_token_nowhere(TOKEN, workdir, [no_token, no_chat, via_config])


@pytest.mark.parametrize("args", [[], ["text", "--stdin"], ["x", "--code", "bad code!"]])
def test_usage_errors(notify, args):
    result = notify(*args, input="")
    assert result.returncode == 2 and result.stderr.startswith("error: ")


# ---- the outbox --------------------------------------------------------------------------------
def test_outbox_is_kept_across_processes_and_flushed_in_order(notify, fake, workdir):
    fake.fail_next("502", times=1000)
    first, second = notify("m1"), notify("m2")
    assert (first.returncode, second.returncode) == (4, 4)
    assert "(2 pending)" in one_line(second.stderr)
    assert json.loads((run_dir(workdir, second) / "delivery.json").read_text())["pending"] == 2
    fake.reset()
    third = notify("m3", "--json")
    assert third.returncode == 0, third.stderr
    assert json.loads(third.stdout)["backlog_sent"] == 2
    assert sent_texts(fake) == ["m1", "m2", "m3"]


def test_flush_sends_the_backlog(notify, fake):
    fake.fail_next("502", times=1000)
    assert notify("kept").returncode == 4
    fake.reset()
    flushed = notify("--flush", "--json")
    assert flushed.returncode == 0 and json.loads(flushed.stdout)["pending"] == 0
    assert sent_texts(fake) == ["kept"]


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_a_message_whose_sender_was_stopped_mid_send_goes_out_with_the_next_flush(notify, fake, workdir, how):
    # cron's `timeout` stops a notify stuck on a slow answer. SIGTERM used to kill Python on the
    # spot (meta.json left `running`); either way the row was left `sending`, and `--flush`
    # (nothing `pending`) skipped the outbox without recovering it.
    fake.fail_next("slow", delay=3)  # stopped long before the answer comes
    proc = subprocess.Popen([sys.executable, "-m", "coin_cli", "notify", "mid-send"], cwd=workdir,
                            env=clean_env(tg_env(fake.base_url)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not fake.messages and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sent_texts(fake) == ["mid-send"]  # the request reached Telegram, the answer had not
    finally:
        proc.send_signal(getattr(signal, how))
        out, err = proc.communicate(timeout=30)
    if how == "SIGTERM":
        assert proc.returncode == 143 and err == "error: terminated (SIGTERM)\n"
        meta = json.loads((workdir / "runs" / last_line(out) / "meta.json").read_text())
        assert (meta["status"], meta["exit_code"]) == ("interrupted", 143)
    flushed = notify("--flush", "--json")
    assert flushed.returncode == 0, flushed.stderr
    summary = json.loads(flushed.stdout)
    assert (summary["backlog_sent"], summary["pending"]) == (1, 0)
    assert sent_texts(fake) == ["mid-send", "mid-send"]  # a possible duplicate, never a loss


def test_outbox_location_setting_and_a_corrupt_outbox_is_exit_3_naming_it(notify, fake, workdir):
    custom = workdir / "state" / "alerts.sqlite"
    assert notify("here", COIN_TELEGRAM__OUTBOX=str(custom)).returncode == 0
    assert custom.is_file() and not (workdir / "runs" / "outbox.sqlite").exists()
    broken = workdir / "broken.sqlite"
    broken.write_bytes(b"not a database at all" * 200)
    result = notify("there", COIN_TELEGRAM__OUTBOX=str(broken))
    assert result.returncode == 3
    assert result.stderr.startswith(f"error: {broken}: cannot open the Telegram outbox")
    assert sent_texts(fake) == ["here"]


def test_a_burst_of_concurrent_cron_runs_is_paced_and_nothing_is_lost_or_doubled(workdir, fake):
    env = tg_env(fake.base_url, COIN_TELEGRAM__MIN_INTERVAL="0.4")
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: run_coin(["notify", f"burst {i}"], cwd=workdir, env=env), range(4)))
    assert [r.returncode for r in results] == [0, 0, 0, 0], [r.stderr for r in results]
    assert sorted(sent_texts(fake)) == [f"burst {i}" for i in range(4)]
    times = [m["at"] for m in fake.messages]
    assert all(b - a >= 0.38 for a, b in itertools.pairwise(times)), times
    assert_token_nowhere(TOKEN, workdir, results)


# ---- light -------------------------------------------------------------------------------------
def test_coin_notify_imports_no_heavy_library(workdir, fake):
    for args in (["notify", "light?"], ["notify", "--help"]):
        result = subprocess.run([sys.executable, "-X", "importtime", "-m", "coin_cli", *args], cwd=workdir,
                                env=clean_env(tg_env(fake.base_url)), capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr[-2000:]
        modules = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines()
                   if line.startswith("import time:")}
        assert "coin_cli" in modules and not modules.intersection(HEAVY), modules.intersection(HEAVY)
    assert sent_texts(fake) == ["light?"]


# ---- the cron examples (they call the real `coin data download` / `coin train --probe`) ----------
CRON = Path(__file__).resolve().parents[2] / "examples" / "cron"
COIN_BIN = str(Path(sys.executable).parent / "coin")


def run_cron(script: str, workdir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(CRON / script)], cwd=workdir, capture_output=True, text=True, timeout=300,
                          env=clean_env({"COIN_HOME": str(workdir), "COIN": COIN_BIN, **env}))


def test_cron_daily_candles_alerts_when_binance_is_unreachable(workdir, fake):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = tg_env(fake.base_url, COIN_BINANCE__API_URL=f"http://127.0.0.1:{port}/api", COIN_BINANCE__MAX_RETRIES="0",
                 COIN_BINANCE__TIMEOUT="2")
    result = run_cron("daily_candles.sh", workdir, env)
    assert result.returncode == 4, result.stdout + result.stderr
    [message] = fake.messages
    assert message["text"].startswith("[CANDLES_FAILED] ")
    assert "Binance was unreachable after retries (exit 4)" in message["text"]
    assert re.search(r"\d{8}T\d{6}Z-data-[0-9a-f]{6}", message["text"])  # the failed run is named
    assert_token_nowhere(TOKEN, workdir, [result])


def test_cron_probe_health_alerts_when_the_probe_is_blocked_and_is_quiet_when_ready(workdir, fake):
    blocked = run_cron("probe_health.sh", workdir, tg_env(fake.base_url, COIN_TRAIN__MIN_ROWS="100000"))
    assert blocked.returncode == 5, blocked.stdout + blocked.stderr
    [message] = fake.messages
    assert message["text"].startswith("[PROBE_BLOCKED] ") and "train_manifest.json" in message["text"]
    assert "too few candles" in message["text"]
    ready = run_cron("probe_health.sh", workdir, tg_env(fake.base_url))
    assert ready.returncode == 0, ready.stdout + ready.stderr
    assert len(fake.messages) == 1
    assert_token_nowhere(TOKEN, workdir, [blocked, ready])


def test_a_token_pasted_into_the_argument_is_kept_out_of_files_and_the_message(notify, fake, workdir):
    result = notify(f"oops {TOKEN} pasted")
    assert result.returncode == 0, result.stderr
    assert sent_texts(fake) == ["oops *** pasted"]
    meta = json.loads((run_dir(workdir, result) / "meta.json").read_text())
    assert "oops *** pasted" in meta["argv"]


def test_paths_and_texts_print_as_they_are_not_as_rich_markup_or_emoji(fake, workdir):
    # A runs dir named like markup used to crash the table after delivery (exit 1, MarkupError),
    # and ":x:" was printed as an emoji in tables and error lines.
    odd = workdir / "r[/]x:x:[red]z"
    result = run_coin(["--runs-dir", str(odd), "notify", "tag [bold]b[/] :x:"], cwd=workdir,
                      env=tg_env(fake.base_url, COIN_TELEGRAM__PARSE_MODE="none"))
    assert result.returncode == 0, result.stderr
    assert f"{odd}/outbox.sqlite" in result.stdout and "❌" not in result.stdout
    assert fake.messages[-1]["text"].startswith("tag [bold]b[/] :x:")
    blocked = run_coin(["--runs-dir", str(odd), "notify", "again"], cwd=workdir,
                       env=tg_env(fake.base_url, TELEGRAM_CHAT_ID="777"))
    assert blocked.returncode == 2 and "❌" not in blocked.stderr and blocked.stderr.count("\n") == 1


# ---- issue 11 item 12: the outbox is an outbox, plain messages are not alerts, tokens by shape -----


def test_plain_messages_without_a_code_are_never_collapsed(notify, fake):
    assert notify("backup done").returncode == 0
    second = notify("backup done", "--json")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["status"] != "collapsed"
    assert sent_texts(fake) == ["backup done", "backup done"]


def test_a_token_of_another_bot_is_redacted_by_its_shape(notify, fake):
    other = "110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"  # the Bot API docs' example shape
    result = notify(f"cron used {other} and https://api.telegram.org/bot{other.replace(':', '%3A')}/getMe at 12:30:45")
    assert result.returncode == 0, result.stderr
    assert sent_texts(fake) == ["cron used *** and https://api.telegram.org/bot***/getMe at 12:30:45"]


def test_the_outbox_refuses_a_coin_ledger_and_leaves_it_untouched(workdir, fake):
    assert run_coin(["data", "bootstrap", "--rows", "300"], cwd=workdir).returncode == 0
    traded = run_coin(["trade", "--mode", "replay", "--max-bars", "5", "--policy", "buyhold",
                       "--state-file", "ledger.sqlite"], cwd=workdir)
    assert traded.returncode == 0, traded.stderr
    ledger = workdir / "ledger.sqlite"
    before = ledger.read_bytes()
    result = run_coin(["notify", "hi"], cwd=workdir,
                      env=tg_env(fake.base_url, COIN_TELEGRAM__OUTBOX=str(ledger)))
    assert result.returncode == 3
    assert result.stderr.startswith(f"error: {ledger}: not a coin Telegram outbox (SQLite application_id 0x436f696e")
    assert ledger.read_bytes() == before
    with sqlite3.connect(ledger) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "messages" not in tables and "sends" not in tables
    assert fake.messages == []


def test_a_new_outbox_carries_its_application_id(notify, fake, workdir):
    assert notify("hi").returncode == 0
    with sqlite3.connect(workdir / "runs" / "outbox.sqlite") as db:
        assert db.execute("PRAGMA application_id").fetchone()[0] == int.from_bytes(b"CoOb", "big")
