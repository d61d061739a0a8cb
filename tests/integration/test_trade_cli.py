"""`coin trade` end to end through the real command: replay/TradingEnv parity on real candles,
kill -9 and restart, signals, the lock, --check, policy gates, corrupt state files."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from coin_cli.runs import file_lock
from tests.conftest import TEST_DATA, clean_env, last_line, run_coin

# The runtime's risk limits and the env's ruin stop are both off where results are compared with
# TradingEnv: neither exists on the other side.
NEUTRAL_RISK = {"COIN_RISK__MAX_DRAWDOWN": "1", "COIN_RISK__REDUCE_DRAWDOWN": "1",
                "COIN_RISK__MAX_DAILY_TURNOVER": "1000000", "COIN_ENV__RUIN_FRACTION": "0"}


def _import(cwd: Path, name: str, symbol: str, interval: str) -> None:
    result = run_coin(["data", "import", str(TEST_DATA / name), "--symbol", symbol, "--interval", interval],
                      cwd=cwd)
    assert result.returncode == 0, result.stderr


def _json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.stdout.strip(), result.stderr
    return json.loads(result.stdout)


def _ledger(path: Path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(path)
    try:
        return {
            "orders": conn.execute("SELECT * FROM orders ORDER BY seq").fetchall(),
            "fills": conn.execute("SELECT * FROM fills ORDER BY seq").fetchall(),
            "account": conn.execute("SELECT first_bar, last_bar, bars, cash, last_close, pending_target, "
                                    "pending_decision_bar, trades, fees, turnover, order_seq FROM account").fetchall(),
            "positions": conn.execute("SELECT * FROM positions").fetchall(),
            "risk": conn.execute("SELECT * FROM risk").fetchall(),
            "risk_events": conn.execute("SELECT bar, from_state, to_state, reason FROM risk_events "
                                        "ORDER BY seq").fetchall(),
        }
    finally:
        conn.close()


def _last_bar(path: Path) -> int | None:
    if not path.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.1)
        try:
            row = conn.execute("SELECT bars FROM account").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return row[0] if row else None


# ---- modes, --check, gates -----------------------------------------------------------------------

def test_paper_is_the_default_mode_and_needs_the_market(coin) -> None:
    # paper (the default) reaches binance.api_url before anything else: a closed port is exit 4
    result = coin("trade", "--symbol", "BTCUSDT", env={"COIN_BINANCE__API_URL": "http://127.0.0.1:9/api",
                                                       "COIN_BINANCE__MAX_RETRIES": "0"})
    assert result.returncode == 4, result.stderr
    assert "127.0.0.1:9/api" in result.stderr
    live = coin("trade", "--mode", "live")
    assert live.returncode == 2 and "--mode live" in live.stderr


def test_check_prints_runtime_ready_and_processes_nothing(coin, workdir: Path) -> None:
    result = coin("trade", "--mode", "replay", "--check", env={"COIN_DATA__BOOTSTRAP_ROWS": "600"})
    assert result.returncode == 0, result.stderr
    assert "runtime ready" in result.stdout
    for key in ("symbol", "interval", "mode", "policy", "broker", "state_file", "risk.max_drawdown"):
        assert key in result.stdout
    run_id = last_line(result.stdout)
    assert (workdir / "runs" / run_id / "runtime_check.json").is_file()
    as_json = _json(coin("trade", "--mode", "replay", "--check", "--json"))
    assert as_json["status"] == "runtime ready" and as_json["mode"] == "replay"
    assert as_json["state"] == "new ledger" and as_json["policy"] == "voltarget"
    assert _last_bar(Path(as_json["state_file"])) is None      # built, never started


def _fake_train_run(runs: Path, run_id: str, feature_hash: str, status: str) -> Path:
    folder = runs / run_id
    folder.mkdir(parents=True)
    (folder / "feature_manifest.json").write_text(json.dumps({"implementation_hash": feature_hash}))
    (folder / "train_manifest.json").write_text(json.dumps({"status": status, "algo": "ppo"}))
    return folder


def test_model_with_another_feature_hash_is_refused_with_both_hashes(coin, workdir: Path) -> None:
    from coin_cli.agents.loader import running_feature_hash
    from coin_cli.config import Settings

    running = running_feature_hash(Settings())
    stale = "0" * 64
    _fake_train_run(workdir / "runs", "20250101T000000Z-train-abcdef", stale, "promoted")
    result = coin("trade", "--mode", "replay", "--policy", "20250101T000000Z-train-abcdef")
    assert result.returncode == 5, result.stderr
    assert stale in result.stderr and running in result.stderr


def test_unpromoted_model_is_refused_unless_allowed(coin, workdir: Path) -> None:
    from coin_cli.agents.loader import running_feature_hash
    from coin_cli.config import Settings

    _fake_train_run(workdir / "runs", "20250101T000000Z-train-123456", running_feature_hash(Settings()), "blocked")
    refused = coin("trade", "--mode", "replay", "--policy", "20250101T000000Z-train-123456")
    assert refused.returncode == 5 and "--allow-unpromoted" in refused.stderr
    allowed = coin("trade", "--mode", "replay", "--policy", "20250101T000000Z-train-123456", "--allow-unpromoted")
    assert allowed.returncode == 3 and "policy.npz" in allowed.stderr    # past the gates: no model file
    unknown = coin("trade", "--mode", "replay", "--policy", "nosuchrun")
    assert unknown.returncode == 2 and "nosuchrun" in unknown.stderr


def test_lock_held_exits_5(coin, workdir: Path) -> None:
    with file_lock(workdir / "runs", "trade-BTCUSDT-1h", "coin trade"):
        result = coin("trade", "--mode", "replay")
    assert result.returncode == 5 and "lock" in result.stderr


def test_corrupt_or_foreign_state_file_is_exit_3_and_kept(coin, workdir: Path) -> None:
    bad = workdir / "ledger.sqlite"
    bad.write_bytes(b"definitely not a database\n" * 50)
    result = coin("trade", "--mode", "replay", "--state-file", str(bad))
    assert result.returncode == 3 and "not a coin state file" in result.stderr
    assert bad.read_bytes() == b"definitely not a database\n" * 50
    foreign = workdir / "foreign.sqlite"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    other = coin("trade", "--mode", "replay", "--state-file", str(foreign))
    assert other.returncode == 3 and "application_id" in other.stderr


# ---- parity with TradingEnv on real candles --------------------------------------------------------

def _env_rollout(workdir: Path, symbol: str, interval: str, extra_env: dict[str, str]) -> dict[str, Any]:
    """TradingEnv stepped with VolTarget over the candles the replay read from the store."""
    from coin_cli.agents.baselines import VolTarget
    from coin_cli.config import load_settings
    from coin_cli.data.store import CandleStore
    from coin_cli.env.rollout import rollout
    from coin_cli.env.trading_env import make_env

    settings = load_settings(None, env=extra_env, overrides={"data.symbol": (symbol, "t"),
                                                              "data.interval": (interval, "t")})
    candles = CandleStore(workdir / "data", "binance").read(symbol, interval)
    env = make_env(settings, candles, mode="eval")
    result = rollout(env, VolTarget.from_settings(settings))
    return result.summary


@pytest.mark.parametrize(("name", "symbol", "interval", "extra"), [
    ("binance_BTCUSDT_5m.csv", "BTCUSDT", "5m", {}),
    ("bittrex_ETCBTC_1m.csv", "ETCBTC", "1m", {"COIN_ENV__TICK_SIZE": "0.00000001", "COIN_ENV__LOT_STEP": "0.01",
                                                "COIN_ENV__MIN_QTY": "0.01", "COIN_ENV__MIN_NOTIONAL": "0.0001",
                                                "COIN_ENV__INITIAL_CASH": "1.0"}),
])
def test_replay_ends_with_the_same_equity_as_trading_env(workdir: Path, name: str, symbol: str, interval: str,
                                                         extra: dict[str, str]) -> None:
    _import(workdir, name, symbol, interval)
    env = {**NEUTRAL_RISK, **extra}
    result = run_coin(["trade", "--mode", "replay", "--symbol", symbol, "--interval", interval,
                       "--policy", "voltarget", "--json"], cwd=workdir, env=env)
    assert result.returncode == 0, result.stderr
    summary = _json(result)
    assert summary["bars"] == summary["bars_total"] > 2_000  # the tests/data excerpts: 7,142 and 3,000 rows
    assert summary["trades"] > 100
    expected = _env_rollout(workdir, symbol, interval, env)
    assert summary["final_equity"] == pytest.approx(expected["final_equity"], rel=1e-9)
    assert summary["trades"] == expected["trades"]
    assert summary["fees"] == pytest.approx(expected["fees"], rel=1e-9)


def test_accounting_conservation_and_metrics(workdir: Path) -> None:
    _import(workdir, "binance_ETHUSDT_5m.csv", "ETHUSDT", "5m")
    prom = workdir / "coin.prom"
    result = run_coin(["trade", "--mode", "replay", "--symbol", "ETHUSDT", "--interval", "5m", "--to", "2021-01-15",
                       "--prom-file", str(prom), "--json"], cwd=workdir, env=NEUTRAL_RISK)
    assert result.returncode == 0, result.stderr
    summary = _json(result)
    ledger = _ledger(Path(summary["state_file"]))
    cash, qty, fees = summary["initial_cash"], 0.0, 0.0
    for seq, _bar, fqty, price, notional, fee, cash_after, qty_after, *_trade in ledger["fills"]:
        assert notional == pytest.approx(abs(fqty) * price, rel=1e-12)
        assert fee == pytest.approx(notional * 0.001, rel=1e-12)          # fee_bps 10
        cash, qty, fees = cash - fqty * price - fee, qty + fqty, fees + fee
        assert cash_after == pytest.approx(cash, rel=1e-9, abs=1e-6), seq
        assert qty_after == pytest.approx(qty, rel=1e-9, abs=1e-9), seq
        assert cash_after >= 0.0 and qty_after >= 0.0                     # spot, long only
    assert fees == pytest.approx(summary["fees"], rel=1e-9) and len(ledger["fills"]) == summary["trades"]
    lines = [json.loads(x) for x in (workdir / "runs" / summary["run_id"] / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == summary["bars"]
    # every bar's books against a recomputation from the fills and the source CSV's closes
    closes = {}
    with (TEST_DATA / "binance_ETHUSDT_5m.csv").open() as fh:
        next(fh)
        for row in fh:
            parts = row.split(",")
            closes[int(parts[0])] = float(parts[4])
    fills = iter(ledger["fills"])
    pending = next(fills, None)
    cash, qty = summary["initial_cash"], 0.0
    for line in lines:
        while pending is not None and pending[1] <= line["bar"]:   # fills at this bar's open
            cash, qty = cash - pending[2] * pending[3] - pending[5], qty + pending[2]
            pending = next(fills, None)
        close = closes[line["bar"]]
        assert line["close"] == close
        assert line["cash"] == pytest.approx(cash, rel=1e-9, abs=1e-6)
        assert line["position"] == pytest.approx(qty, abs=1e-9)
        assert line["equity"] == pytest.approx(cash + qty * close, rel=1e-9), line["bar"]
        assert len(line["lat_us"]) == 7 and line["total_us"] >= 0
    assert pending is None                                          # every fill belongs to a bar
    assert lines[-1]["equity"] == pytest.approx(summary["final_equity"], rel=1e-11)
    assert [x["bar"] for x in lines] == sorted({x["bar"] for x in lines})
    saved = json.loads((workdir / "runs" / summary["run_id"] / "summary.json").read_text())
    for key in ("final_equity", "total_return", "max_drawdown", "trades", "fees", "bars", "mode", "policy"):
        assert saved[key] == summary[key]
    assert "coin_equity{" in prom.read_text()


# ---- crash safety ---------------------------------------------------------------------------------

def _trade_cmd(state: Path, *more: str) -> list[str]:
    return [sys.executable, "-m", "coin_cli", "trade", "--mode", "replay", "--symbol", "ETHUSDT", "--interval", "5m",
            "--state-file", str(state), "--json", *more]


def test_kill_9_at_random_points_then_restart_gives_the_same_ledger(workdir: Path) -> None:
    _import(workdir, "binance_ETHUSDT_5m.csv", "ETHUSDT", "5m")
    reference = workdir / "reference.sqlite"
    ref = subprocess.run(_trade_cmd(reference), cwd=workdir, env=clean_env(), capture_output=True, text=True,
                         timeout=300)
    assert ref.returncode in (0, 5), ref.stderr          # 5: the default kill switch may trip; same both ways
    total = _json(ref)["bars_total"]

    state = workdir / "killed.sqlite"
    rng = random.Random(20250101)
    kills, final = 0, None
    for _attempt in range(12):
        proc = subprocess.Popen(_trade_cmd(state), cwd=workdir, env=clean_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        start = _last_bar(state) or 0
        threshold = start + rng.randint(300, 1_500)  # the excerpt has 7,142 bars
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            done = _last_bar(state) or 0
            if done >= threshold:
                time.sleep(rng.uniform(0.0, 0.05))     # land anywhere inside the next batch of bars
                break
            time.sleep(0.005)
        if proc.poll() is None and (_last_bar(state) or 0) < total - 500:
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
            kills += 1
            continue
        _out, err = proc.communicate(timeout=300)
        final = proc.returncode
        assert final == ref.returncode, err
        break
    assert final is not None, "the replay never finished"
    assert kills >= 2
    killed, expected = _ledger(state), _ledger(reference)
    ids = [row[1] for row in killed["orders"]]
    assert len(ids) == len(set(ids)) > 100
    assert killed == expected


def test_sigint_and_sigterm_finish_the_bar_commit_and_resume(workdir: Path) -> None:
    _import(workdir, "binance_ETHUSDT_5m.csv", "ETHUSDT", "5m")
    state = workdir / "s.sqlite"
    outcomes = []
    for sig, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):   # the rule of every command
        proc = subprocess.Popen(_trade_cmd(state, "--speed", "400", "--to", "2020-12-05"), cwd=workdir,
                                env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        before = _last_bar(state) or 0
        while (_last_bar(state) or 0) < before + 50 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == code, err
        summary = json.loads(out)
        assert summary["stopped_by"] == sig.name
        assert _last_bar(state) == summary["bars_total"]        # committed on the way out
        meta = json.loads((workdir / "runs" / summary["run_id"] / "meta.json").read_text())
        assert meta["status"] == "interrupted" and meta["exit_code"] == code
        assert f"ledger committed after bar {summary['last_bar']}: run the same command to resume" in err
        outcomes.append(summary)
    assert outcomes[1]["resumed_from"] == outcomes[0]["last_bar"]
    rest = subprocess.run(_trade_cmd(state, "--to", "2020-12-05"), cwd=workdir, env=clean_env(),
                          capture_output=True, text=True, timeout=120)
    assert rest.returncode == 0, rest.stderr
    reference = workdir / "r.sqlite"
    subprocess.run(_trade_cmd(reference, "--to", "2020-12-05"), cwd=workdir, env=clean_env(), capture_output=True,
                   check=True, timeout=120)
    assert _ledger(state) == _ledger(reference)


def test_drawdown_kill_switch_halts_with_exit_5_and_resumes_after_reset(workdir: Path) -> None:
    _import(workdir, "binance_BTCUSDT_5m.csv", "BTCUSDT", "5m")
    env = {"COIN_RISK__MAX_DRAWDOWN": "0.03", "COIN_RISK__REDUCE_DRAWDOWN": "0.02"}   # flatten_on_halt: default

    def trade(to: str, *more: str) -> tuple[int, dict[str, Any], str]:
        result = run_coin(["trade", "--mode", "replay", "--symbol", "BTCUSDT", "--interval", "5m", "--to", to,
                           "--json", *more], cwd=workdir, env=env)
        return result.returncode, _json(result), result.stderr

    code, summary, err = trade("2020-12-10")
    assert code == 5, err
    assert summary["risk_state"] == "HALTED" and summary["position"] == 0.0   # flattened
    assert summary["max_drawdown"] >= 0.03
    assert "HALTED" in err and "DRAWDOWN" in err                             # the log notifier's alerts
    state = Path(summary["state_file"])
    events = _ledger(state)["risk_events"]
    assert [e[2] for e in events][-1] == "HALTED"
    # new candles while halted: every bar is processed, nothing is traded
    code, again, _ = trade("2020-12-15")
    assert code == 5 and again["bars"] == 5 * 288 and again["trades"] == summary["trades"]
    assert again["position"] == 0.0 and again["resumed_from"] == summary["last_bar"]
    # --reset-halt: ACTIVE from the next bar, and the policy trades again
    code, reset, err = trade("2020-12-20", "--reset-halt")
    assert reset["bars"] == 5 * 288 and reset["trades"] > again["trades"], err
    after = _ledger(state)["risk_events"][len(events):]
    assert after[0][1:3] == ("HALTED", "ACTIVE") and "--reset-halt" in after[0][3]
    assert code == (5 if reset["risk_state"] == "HALTED" else 0)


def test_max_bars_then_resume_equals_one_run(workdir: Path) -> None:
    _import(workdir, "binance_BTCUSDT_5m.csv", "BTCUSDT", "5m")
    args = ["trade", "--mode", "replay", "--symbol", "BTCUSDT", "--interval", "5m", "--to", "2020-12-10", "--json"]
    first = _json(run_coin([*args, "--max-bars", "1000", "--state-file", "a.sqlite"], cwd=workdir, env=NEUTRAL_RISK))
    assert first["bars"] == 1000
    second = _json(run_coin([*args, "--state-file", "a.sqlite"], cwd=workdir, env=NEUTRAL_RISK))
    whole = _json(run_coin([*args, "--state-file", "b.sqlite"], cwd=workdir, env=NEUTRAL_RISK))
    assert second["bars"] + 1000 == whole["bars"]
    assert second["final_equity"] == whole["final_equity"]
    assert _ledger(workdir / "a.sqlite") == _ledger(workdir / "b.sqlite")


def test_runs_in_a_pipe_without_a_status_panel(coin) -> None:
    result = coin("trade", "--mode", "replay", "--max-bars", "300", env={"COIN_DATA__BOOTSTRAP_ROWS": "500"})
    assert result.returncode == 0, result.stderr
    assert "\x1b[" not in result.stderr and "\r" not in result.stderr
    assert "final_equity" in result.stdout
    assert os.path.basename(last_line(result.stdout)).startswith("20")
