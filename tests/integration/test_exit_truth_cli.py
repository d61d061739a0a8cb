"""Exit codes and error lines that tell the truth (issue 11 items 5 and 8), through the real `coin`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import clean_env


def _newest_meta(workdir: Path) -> dict:
    metas = [json.loads(p.read_text()) for p in (workdir / "runs").glob("*/meta.json")]
    return max(metas, key=lambda m: m["started"])


def test_a_closed_stdout_is_quiet_and_exits_with_the_recorded_code(coin, workdir: Path) -> None:
    assert coin("data", "bootstrap", "--rows", "500").returncode == 0
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader (`| head`) is gone before coin writes a byte: every write is EPIPE
    try:
        done = subprocess.run([sys.executable, "-m", "coin_cli", "data", "validate"], cwd=workdir,
                              env=clean_env(), stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    meta = _newest_meta(workdir)
    assert (meta["status"], meta["exit_code"]) == ("ok", 0)
    assert done.returncode == meta["exit_code"]
    assert done.stderr == ""


def test_a_closed_stdout_keeps_a_real_failure_code(coin, workdir: Path) -> None:
    # nothing stored for this pair: validate fails with its own code, and the closed pipe does not hide it
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([sys.executable, "-m", "coin_cli", "data", "validate", "--symbol", "ETHUSDT"],
                              cwd=workdir, env=clean_env(), stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=120)
    finally:
        os.close(write_end)
    assert done.returncode not in (0, 1)
    assert done.returncode == _newest_meta(workdir)["exit_code"]
    assert done.stderr.startswith("error: ")


def test_an_unknown_section_from_the_environment_names_the_variable(coin, workdir: Path) -> None:
    (workdir / "configs").mkdir()
    (workdir / "configs" / "default.yaml").write_text("data:\n  symbol: BTCUSDT\n")
    done = coin("data", "ls", env={"COIN_FOO__BAR": "1"})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: COIN_FOO__BAR: foo: unknown key (check the spelling; see configs/default.yaml)"]


def test_a_bad_interval_names_the_variable_or_the_file_that_said_it(coin, workdir: Path) -> None:
    from_env = coin("data", "ls", env={"COIN_DATA__INTERVAL": "7m"})
    assert from_env.returncode == 2
    assert from_env.stderr.startswith("error: COIN_DATA__INTERVAL: data.interval: expected a Binance kline interval")
    assert from_env.stderr.rstrip().endswith("got '7m'")
    (workdir / "mine.yaml").write_text("data:\n  interval: 7m\n")
    from_file = coin("--config", "mine.yaml", "data", "ls")
    assert from_file.returncode == 2
    assert from_file.stderr.startswith("error: mine.yaml: data.interval: expected a Binance kline interval")


def test_a_closed_stdout_before_any_command_runs_is_quiet_too(workdir: Path) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # `coin --help | head -1`: the root help is written by the console script
    try:
        done = subprocess.run([sys.executable, "-m", "coin_cli", "--help"], cwd=workdir, env=clean_env(),
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (0, "")
