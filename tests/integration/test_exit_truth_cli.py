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
