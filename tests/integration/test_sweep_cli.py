"""`coin train --sweep` end to end through the real command (Ray Tune, Optuna, ASHA): a local
sweep of three tiny trials, then `coin trade --policy <sweep id>`; the same sweep on a local
multi-node Ray cluster; Ctrl-C keeps finished trials and --resume continues; a bad space file;
the missing extra. Trials are tiny (256 PPO steps on 3,000 bootstrap candles)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import clean_env, last_line, run_coin

pytest.importorskip("ray.tune", reason="the [sweep] extra (scripts/setup.sh installs it)")
pytestmark = pytest.mark.timeout(900)  # Ray start-up and the trials on a loaded 2-core machine

SPACE = """\
trials: 3
fixed:
  train.timesteps: 256
  train.eval_freq: 128
  env.action: discrete
space:
  env.trade_band: {uniform: [0.0, 0.2]}
  env.discrete_levels: {choice: [[0, 1], [0, 0.5, 1]]}
  env.reward: {choice: [log_return, log_return_turnover_penalty, differential_sharpe]}
  algo.learning_rate: {loguniform: [0.0001, 0.001]}
  train.seed: {int: [1, 100]}
"""
DATA = {"COIN_DATA__BOOTSTRAP_ROWS": "3000", "COIN_TRAIN__MIN_ROWS": "1000"}


def _env(tmp: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    # Ray's sockets and logs under this test's folder (short: AF_UNIX paths are limited to 107 bytes)
    return {**DATA, "RAY_TMPDIR": str(_ray_tmp(tmp)), **(extra or {})}


def _ray_tmp(tmp: Path) -> Path:
    path = Path("/tmp") / f"ray-{tmp.name[-12:]}-{os.getpid()}"
    path.mkdir(exist_ok=True)
    return path


def _space(work: Path, text: str = SPACE) -> Path:
    path = work / "space.yaml"
    path.write_text(text)
    return path


def _sweep(work: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_coin(["train", "--sweep", str(_space(work)), *args], cwd=work, env=_env(work, env), timeout=600)


def _check_sweep(work: Path, summary: dict[str, Any], trials: int) -> Path:
    """The folder layout and the honest selection, recomputed from the trial folders."""
    sweep_dir = work / "runs" / summary["run_id"]
    sweep = json.loads((sweep_dir / "sweep.json").read_text())
    assert sweep["trials_tried"] == trials == len(sweep["trials"])
    folders = sorted(p.name for p in (sweep_dir / "trials").iterdir())
    assert len(folders) == trials
    for name in folders:  # each a normal train run folder
        trial = sweep_dir / "trials" / name
        assert (trial / "config.yaml").is_file() and (trial / "meta.json").is_file()
        assert (trial / "feature_manifest.json").is_file()
    finished = [t for t in sweep["trials"] if t["status"] == "finished"]
    assert finished, sweep["trials"]
    val = {}
    for t in finished:
        evaluation = json.loads((sweep_dir / t["folder"] / "evaluation.json").read_text())
        val[t["trial_id"]] = evaluation["val"]["metrics"]["agent"]["sharpe"]
        assert t["val_sharpe"] == pytest.approx(val[t["trial_id"]])
        if t["trial_id"] != sweep["best_trial"]:
            assert "test" not in evaluation  # only the best trial is ever evaluated on test
    assert sweep["best_trial"] == max(val, key=val.get)
    best = sweep_dir / sweep["best_folder"]
    evaluation = json.loads((best / "evaluation.json").read_text())
    manifest = json.loads((best / "train_manifest.json").read_text())
    margin = manifest["promotion"]["margin"]
    beats = all(evaluation[s]["metrics"]["agent"]["sharpe"]
                - max(evaluation[s]["metrics"][b]["sharpe"] for b in ("voltarget", "buyhold", "flat")) > margin
                for s in ("val", "test"))
    ruined = any(evaluation[s]["metrics"]["agent"]["ruined"] for s in ("val", "test"))
    assert manifest["status"] == ("promoted" if beats and not ruined else "not_promoted") == sweep["status"]
    assert manifest["trials_tried"] == trials == manifest["promotion"]["trials_tried"]
    lines = (sweep_dir / "trials.csv").read_text().splitlines()
    assert len(lines) == trials + 1 and lines[0].startswith("trial_id,status,val_sharpe")
    return sweep_dir


def _no_ray_left(work: Path) -> None:
    import shutil

    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(_ray_tmp(work)) not in ps, "a Ray process of this test is still running"
    shutil.rmtree(_ray_tmp(work), ignore_errors=True)


def _sweep_on_a_terminal(work: Path, *args: str) -> tuple[int, str, str]:
    """The sweep with its stderr on a pseudo-terminal (what a user at a prompt sees) and stdout piped:
    (exit code, stdout, everything the terminal received)."""
    import fcntl
    import struct
    import termios
    import threading

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    env = clean_env({**_env(work), "TERM": "xterm-256color", "COLUMNS": "200"})
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "coin_cli", "train", "--sweep", str(_space(work)), *args],
                            cwd=work, env=env, stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    screen: list[bytes] = []

    def drain() -> None:  # a terminal that is not read fills up and blocks the writer
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:   # EIO: the child's side closed
                return
            if not data:
                return
            screen.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        out, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join(10)
        os.close(master)
    return proc.returncode, out, b"".join(screen).decode(errors="replace")


def test_local_sweep_then_trade_the_sweep_id(workdir: Path) -> None:
    code, out, screen = _sweep_on_a_terminal(workdir, "--max-concurrent", "2", "--json")
    assert code == 0, screen[-3000:]
    summary = json.loads(out)
    # on a terminal: the live table of the trials, refreshed as they run, not the piped plain lines
    assert "sweep: 0/3 trials done" in screen and "sweep: 3/3 trials done" in screen
    assert "running" in screen and "best val Sharpe" in screen
    assert not any(line.startswith("trial ") for line in screen.splitlines())
    sweep_dir = _check_sweep(workdir, summary, 3)
    sweep = json.loads((sweep_dir / "sweep.json").read_text())
    assert sweep["ray"] == {"address": "local", "cpus": 2}
    assert (sweep_dir / "feature_manifest.json").read_bytes() == (
        sweep_dir / sweep["best_folder"] / "feature_manifest.json").read_bytes()
    trade = run_coin(["trade", "--mode", "replay", "--policy", summary["run_id"], "--max-bars", "300",
                      "--allow-unpromoted", "--json"], cwd=workdir, env=DATA)
    assert trade.returncode == 0, trade.stderr
    traded = json.loads(trade.stdout)
    assert traded["policy"] == summary["run_id"] and traded["bars"] == 300
    _no_ray_left(workdir)


def test_sweep_on_a_local_multi_node_cluster(workdir: Path) -> None:
    """Head node with no CPUs (it schedules nothing), one worker node with two: every trial runs
    on the worker; it gets the candles from the object store (its settings point at no store)."""
    from ray.cluster_utils import Cluster

    os.environ["RAY_TMPDIR"] = str(_ray_tmp(workdir))
    cluster = Cluster(initialize_head=True, connect=False,
                      head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=2)
        cluster.wait_for_nodes()
        address = cluster.address
        result = _sweep(workdir, "--ray-address", address, "--max-concurrent", "2")
        assert result.returncode == 0, result.stderr
        run_id = last_line(result.stdout)
        assert "trials (best validation Sharpe first)" in result.stdout
        finished_lines = [line for line in result.stderr.splitlines() if line.startswith("trial ")]
        assert len(finished_lines) == 3, result.stderr  # piped: one plain line per finished trial
    finally:
        cluster.shutdown()
        os.environ.pop("RAY_TMPDIR", None)
    sweep_dir = _check_sweep(workdir, {"run_id": run_id}, 3)
    sweep = json.loads((sweep_dir / "sweep.json").read_text())
    assert sweep["ray"]["address"] == address
    import hashlib

    import pandas as pd

    candles = pd.read_parquet(workdir / "data" / "binance" / "BTCUSDT" / "1h.parquet")
    digest = hashlib.sha256()
    for column in ("open_time", "open", "high", "low", "close", "volume"):
        digest.update(candles[column].to_numpy().tobytes())
    for trial in sweep["trials"]:
        folder = sweep_dir / trial["folder"]
        config = (folder / "config.yaml").read_text()
        assert "no-candle-store" in config  # the worker's settings name no candle store
        if trial["status"] == "finished":
            manifest = json.loads((folder / "train_manifest.json").read_text())
            assert manifest["data"]["candles_sha256"] == digest.hexdigest()  # the head's candles
    _no_ray_left(workdir)


def _interrupted_sweep(workdir: Path, space: Path, sig: int, code: int) -> tuple[str, dict, list[dict]]:
    """Start a sweep, send `sig` once a trial has finished; the run exits `code` keeping that trial."""
    proc = subprocess.Popen([sys.executable, "-m", "coin_cli", "train", "--sweep", str(space), "--max-concurrent",
                             "1"], cwd=workdir, env=clean_env(_env(workdir)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 400
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            finals = [p for p in (workdir / "runs").glob("*/tune/*/result.json")
                      if '"final": true' in p.read_text()]
            if finals:
                break
            time.sleep(0.5)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    run_id = last_line(out)
    assert f"--resume {run_id}" in err
    first = json.loads((workdir / "runs" / run_id / "sweep.json").read_text())
    assert first["status"] == "interrupted"
    kept = [t for t in first["trials"] if t["status"] == "finished"]
    assert kept and all((workdir / "runs" / run_id / t["folder"] / "model.zip").is_file() for t in kept)
    assert len(first["trials"]) < 3 or any(t["status"] != "finished" for t in first["trials"])
    return run_id, first, kept


def test_sigterm_keeps_finished_trials_like_ctrl_c(workdir: Path) -> None:
    # cron's `timeout` and systemd stop with SIGTERM: the same graceful stop, exit 143
    _interrupted_sweep(workdir, _space(workdir), signal.SIGTERM, 143)
    _no_ray_left(workdir)


def test_ctrl_c_keeps_finished_trials_and_resume_continues(workdir: Path) -> None:
    space = _space(workdir)
    run_id, _first, kept = _interrupted_sweep(workdir, space, signal.SIGINT, 130)

    result = run_coin(["train", "--sweep", str(space), "--resume", run_id, "--json"], cwd=workdir,
                      env=_env(workdir), timeout=600)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    _check_sweep(workdir, summary, 3)
    resumed = json.loads((workdir / "runs" / summary["run_id"] / "sweep.json").read_text())
    assert resumed["resumed_from"] == run_id
    ids = {t["trial_id"] for t in resumed["trials"]}
    assert {t["trial_id"] for t in kept} <= ids  # continued, not restarted
    _no_ray_left(workdir)


@pytest.mark.parametrize(("text", "named"), [
    ("space:\n  env.trade_bnad: {uniform: [0, 0.1]}\n", "space.env.trade_bnad: unknown key"),
    ("space:\n  env.trade_band: {uniform: [0, 1.5]}\n", "space.env.trade_band.uniform"),
    ("space:\n  env.reward: {choice: [log_return, sharpe]}\n", "space.env.reward.choice"),
    ("space:\n  algo.learning_rat: {loguniform: [0.0001, 0.001]}\n", "space.algo.learning_rat"),
    ("space:\n  data.symbol: {choice: [ETHUSDT]}\n", "space.data.symbol: only train.*, env.* and algo.*"),
    ("space:\n  env.trade_band: {normal: [0, 1]}\n", "space.env.trade_band: unknown kind 'normal'"),
    ("trials: 0\nspace:\n  env.trade_band: {uniform: [0, 0.1]}\n", "trials: expected a whole number >= 1"),
    ("space: [\n", "YAML syntax error"),
])
def test_bad_space_file_is_one_error_line_naming_the_key(workdir: Path, text: str, named: str) -> None:
    path = _space(workdir, text)
    result = run_coin(["train", "--sweep", str(path)], cwd=workdir, env=DATA)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}") and named in lines[0], lines
    assert not (workdir / "runs").exists() or not any((workdir / "runs").iterdir())  # nothing half-written


def test_without_the_extra_sweep_exits_2_naming_it(workdir: Path) -> None:
    shim = workdir / "shim" / "ray"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('No module named ray (test shim)')\n")
    result = run_coin(["train", "--sweep", str(_space(workdir))], cwd=workdir,
                      env={"PYTHONPATH": str(workdir / "shim")})
    assert result.returncode == 2
    assert result.stderr.strip() == "error: coin train --sweep needs the sweep extra: pip install -e '.[sweep]' " \
                                    "(Ray Tune and Optuna)"
