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
from coin_cli.runs import KEY_PACKAGES, Run, file_lock, git_sha, new_run_id

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
    assert config == Settings().model_dump(mode="json")


def test_meta_versions_are_the_installed_packages(tmp_path: Path) -> None:
    import numpy
    import pandas
    import pydantic
    import telegram
    import typer

    with Run(tmp_path, "data", Settings()) as run:
        pass
    packages = json.loads((run.dir / "meta.json").read_text())["packages"]
    assert set(packages) == set(KEY_PACKAGES)
    # the modules' own version attributes, not the metadata lookup the code uses
    assert packages["numpy"] == numpy.__version__ and packages["pandas"] == pandas.__version__
    assert packages["typer"] == typer.__version__ and packages["pydantic"] == pydantic.VERSION
    assert packages["python-telegram-bot"] == telegram.__version__
    assert packages["stable-baselines3"]


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout.strip()


def test_git_sha_is_head_of_loose_packed_detached_and_worktree_checkouts(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    for n in range(2):
        (repo / "f").write_text(str(n))
        _git(repo, "add", "f")
        _git(repo, "commit", "-q", "-m", f"c{n}")
    assert git_sha(repo) == _git(repo, "rev-parse", "HEAD")          # loose ref
    _git(repo, "pack-refs", "--all")
    assert not (repo / ".git" / "refs" / "heads" / "main").exists()
    assert git_sha(repo) == _git(repo, "rev-parse", "HEAD")          # packed-refs
    first = _git(repo, "rev-parse", "HEAD~1")
    _git(repo, "worktree", "add", "-q", str(tmp_path / "wt"), first)
    assert git_sha(tmp_path / "wt") == first                         # worktree, detached
    _git(repo, "checkout", "-q", "--detach", first)
    assert git_sha(repo) == first                                    # detached HEAD
    assert git_sha(tmp_path / "nowhere") is None                     # not a checkout (a wheel install)
    (tmp_path / "plain").mkdir()
    assert git_sha(tmp_path / "plain") is None                       # a folder outside any repository


def test_git_sha_is_none_without_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "f").write_text("x")
    _git(repo, "add", "f")
    _git(repo, "commit", "-q", "-m", "c")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no git executable to be found
    assert git_sha(repo) is None


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
        with pytest.raises(LockHeldError, match=r"another run holds this lock \(coin trade, pid \d+"), \
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
