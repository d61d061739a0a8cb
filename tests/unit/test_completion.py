"""Shell completion: `coin --help` offers --install-completion / --show-completion, and Tab completes
symbols and intervals from the candle store's folders and run ids from the runs folder, through
click's completion protocol (the environment variable bash's completion script sets)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from coin_cli.commands._options import DEFAULT_DATA_DIR, DEFAULT_RUNS_DIR
from coin_cli.config import Settings
from tests.conftest import clean_env

RUNS = ("20261130T080000Z-train-aaaaaa", "20261201T090000Z-train-bbbbbb", "20261201T100000Z-trade-cccccc")
# After the completion, report whether it imported anything heavy (it runs on every Tab press).
PROBE = ("import atexit, sys; atexit.register(lambda: sys.stderr.write("
         "'heavy=' + ','.join(m for m in ('pandas', 'pyarrow', 'torch') if m in sys.modules)));"
         "from coin_cli.startup import main; main()")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for symbol, intervals in {"BTCUSDT": ("1h", "5m"), "ETHUSDT": ("1d",), "ETHBTC": ()}.items():
        (tmp_path / "data" / "binance" / symbol).mkdir(parents=True)
        for interval in intervals:
            (tmp_path / "data" / "binance" / symbol / f"{interval}.parquet").write_bytes(b"PAR1")
            (tmp_path / "data" / "binance" / symbol / f"{interval}.manifest.json").write_text("{}")
    for run_id in RUNS:
        (tmp_path / "runs" / run_id).mkdir(parents=True)
    (tmp_path / "runs" / ".locks").mkdir()
    return tmp_path


def complete(folder: Path, *words: str, env: dict[str, str] | None = None) -> tuple[list[str], str]:
    """What bash would offer after `coin <words>` (the last word is the one being typed)."""
    line = ["coin", *words]
    env = clean_env({"_COIN_COMPLETE": "complete_bash", "COMP_WORDS": " ".join(line),
                     "COMP_CWORD": str(len(line) - 1), **(env or {})})
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=folder, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.split(), result.stderr.rpartition("heavy=")[2].strip()


def test_symbols_from_the_store(folder: Path) -> None:
    offered, heavy = complete(folder, "trade", "--symbol", "ETH")
    assert offered == ["ETHUSDT"] and heavy == ""   # ETHBTC has no candles
    assert complete(folder, "data", "validate", "--symbol", "")[0] == ["BTCUSDT", "ETHUSDT"]


def test_intervals_of_the_typed_symbol_else_all_stored(folder: Path) -> None:
    assert complete(folder, "train", "--symbol", "BTCUSDT", "--interval", "")[0] == ["1h", "5m"]
    assert complete(folder, "trade", "--interval", "")[0] == ["1d", "1h", "5m"]


def test_intervals_fall_back_to_binance_intervals_on_an_empty_store(tmp_path: Path) -> None:
    offered, _ = complete(tmp_path, "stream", "market", "--interval", "1")
    assert {"1s", "1m", "1h", "1d", "1w", "1M"} <= set(offered) and "5m" not in offered


def test_run_ids_from_the_runs_folder_and_the_data_dir_flag(folder: Path) -> None:
    assert complete(folder, "train", "--resume", "")[0] == [RUNS[1], RUNS[0]]   # train runs, newest first
    assert complete(folder, "report", "2026120")[0] == [RUNS[2], RUNS[1]]
    (folder / "elsewhere" / "binance" / "SOLUSDT").mkdir(parents=True)
    (folder / "elsewhere" / "binance" / "SOLUSDT" / "4h.parquet").write_bytes(b"PAR1")
    assert complete(folder, "--data-dir", "elsewhere", "trade", "--symbol", "")[0] == ["SOLUSDT"]
    assert complete(folder, "trade", "--symbol", "", env={"COIN_PATHS__DATA_DIR": "elsewhere"})[0] == ["SOLUSDT"]


def test_the_folders_completion_reads_are_the_default_settings() -> None:
    paths = Settings().paths
    assert (paths.data_dir, paths.runs_dir) == (DEFAULT_DATA_DIR, DEFAULT_RUNS_DIR)


def test_help_offers_completion_install_and_show(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "coin_cli", "--help"], cwd=tmp_path, env=clean_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "--install-completion" in result.stdout and "--show-completion" in result.stdout
    # from a bash prompt, as a user runs it: the shell is detected from the parent processes (a test
    # runner started in the background by a shell that exited has none of its own)
    shown = subprocess.run(["bash", "-c", '"$0" -m coin_cli --show-completion; exit $?', sys.executable],
                           cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "_COIN_COMPLETE=complete_bash" in shown.stdout
