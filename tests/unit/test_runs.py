"""Run folders, atomic writes and the overlap lock."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from coin_cli.config import Settings
from coin_cli.errors import DataError, ExitCode, LockHeldError
from coin_cli.runs import Run, file_lock, new_run_id

RUN_ID = re.compile(r"^\d{8}T\d{6}Z-[a-z]+-[0-9a-f]{6}$")


def test_run_id_format() -> None:
    assert RUN_ID.match(new_run_id("train"))


def test_run_folder_contents_and_meta(tmp_path: Path) -> None:
    with Run(tmp_path, "data", Settings(), argv=["coin", "data", "ls"]) as run:
        assert json.loads((run.dir / "meta.json").read_text())["status"] == "running"
    meta = json.loads((run.dir / "meta.json").read_text())
    assert RUN_ID.match(run.run_id) and run.dir.parent == tmp_path
    assert meta["status"] == "ok" and meta["exit_code"] == 0
    assert meta["argv"] == ["coin", "data", "ls"]
    for key in ("coin_version", "python", "packages", "git_sha", "host", "started", "ended"):
        assert key in meta
    assert meta["packages"]["pandas"]
    config = yaml.safe_load((run.dir / "config.yaml").read_text())
    assert config["risk"]["max_drawdown"] == Settings().risk.max_drawdown


def test_meta_finalised_failed_with_exit_code(tmp_path: Path) -> None:
    with pytest.raises(DataError), Run(tmp_path, "data", Settings()) as run:
        raise DataError("bad rows")
    meta = json.loads((run.dir / "meta.json").read_text())
    assert (meta["status"], meta["exit_code"]) == ("failed", ExitCode.DATA)


def test_run_ids_unique_under_concurrent_starts(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        runs = list(pool.map(lambda _: Run(tmp_path, "trade", Settings()), range(64)))
    assert len({r.run_id for r in runs}) == 64
    assert len(list(tmp_path.iterdir())) == 64


ATOMIC_WRITER = """
import sys
from pathlib import Path
from coin_cli.fsio import atomic_write_json
target = Path(sys.argv[1])
blob = {"rows": list(range(200_000))}
print("ready", flush=True)
i = 0
while True:
    blob["i"] = i
    atomic_write_json(target, blob)
    i += 1
"""


def test_atomic_write_survives_kill(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    for delay in (0.05, 0.13, 0.31):
        proc = subprocess.Popen([sys.executable, "-c", ATOMIC_WRITER, str(target)], stdout=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if target.exists():
            data = json.loads(target.read_text())   # never half a JSON
            assert len(data["rows"]) == 200_000


LOCK_HOLDER = """
import sys, time
from pathlib import Path
from coin_cli.runs import file_lock
with file_lock(Path(sys.argv[1]), "trade-BTCUSDT-1h", "coin trade"):
    print("held", flush=True)
    time.sleep(30)
"""


def test_lock_held_by_another_process_then_released_on_death(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(tmp_path)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"held"
        with pytest.raises(LockHeldError, match=r"another coin trade run holds this lock \(pid \d+"), \
                file_lock(tmp_path, "trade-BTCUSDT-1h", "coin trade"):
            pass
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with file_lock(tmp_path, "trade-BTCUSDT-1h", "coin trade") as path:   # a dead holder leaves no stale lock
        assert path.exists()


def test_secret_on_the_command_line_is_redacted_in_meta(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "424242:secret-token-on-argv")
    with Run(tmp_path, "notify", Settings(), argv=["coin", "notify", "oops 424242:secret-token-on-argv"]) as run:
        pass
    text = (run.dir / "meta.json").read_text()
    assert "secret-token-on-argv" not in text and "oops ***" in text
