"""`coin trade --policy RUN_ID` for runs that are not what they seem (issue 11 item 9): a probe run
is named as such; a model trained on another interval is refused (exit 5, both named); another
symbol trades with a warning in the summary."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import last_line
from tests.integration.test_train_ruin_cli import _write_crash


def test_probe_run_interval_and_symbol_of_a_policy(coin, workdir: Path) -> None:
    _write_crash(workdir / "crash.csv")
    assert coin("data", "import", str(workdir / "crash.csv"), "--symbol", "BTCUSDT", "--interval", "1h").returncode == 0
    probe = coin("train", "--probe", "--interval", "1h")
    probe_id = last_line(probe.stdout)
    assert (workdir / "runs" / probe_id / "train_probe_summary.json").is_file(), probe.stderr
    refused = coin("trade", "--mode", "replay", "--interval", "1h", "--policy", probe_id, "--allow-unpromoted")
    assert refused.returncode == 2 and "probe" in refused.stderr and "not a trained model" in refused.stderr
    assert "policy.npz" not in refused.stderr

    trained = coin("train", "--interval", "1h", "--timesteps", "256", "--json", env={"COIN_TRAIN__N_ENVS": "1"})
    assert trained.returncode == 0, trained.stderr
    run_id = json.loads(trained.stdout)["run_id"]
    other_interval = coin("trade", "--mode", "replay", "--interval", "4h", "--policy", run_id, "--allow-unpromoted")
    assert other_interval.returncode == 5, other_interval.stderr
    assert "trained on 1h" in other_interval.stderr and "4h" in other_interval.stderr
    other_symbol = coin("trade", "--mode", "replay", "--symbol", "ETHUSDT", "--interval", "1h", "--policy", run_id,
                        "--allow-unpromoted", "--max-bars", "50", "--json", env={"COIN_DATA__BOOTSTRAP_ROWS": "600"})
    assert other_symbol.returncode == 0, other_symbol.stderr
    summary = json.loads(other_symbol.stdout)
    assert summary["warnings"] == [f"model {run_id} was trained on BTCUSDT, trading ETHUSDT"]
