"""`coin train` end to end: the real command in a subprocess, small data and few timesteps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import clean_env, last_line, run_coin

pytestmark = pytest.mark.slow

# small and fast: 3000 bootstrap candles, validation every 1024 steps, single-threaded torch
FAST = {"COIN_DATA__BOOTSTRAP_ROWS": "3000", "COIN_TRAIN__EVAL_FREQ": "1024", "OMP_NUM_THREADS": "1"}
ARTIFACTS = ("model.zip", "vecnormalize.pkl", "policy.npz", "feature_manifest.json", "training_curve.csv",
             "train_manifest.json", "evaluation.json", "evaluation.csv", "equity_test.svg", "config.yaml", "meta.json")


def _coin(cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 240):
    return run_coin(list(args), cwd=cwd, env={**FAST, **(env or {})}, timeout=timeout)


def _runs(cwd: Path) -> list[Path]:
    runs = cwd / "runs"
    return sorted(p for p in runs.iterdir() if p.is_dir() and not p.name.startswith(".")) if runs.is_dir() else []


# ---- bad flag combinations: exit 2, one line, nothing half-written ------------------------------

@pytest.mark.parametrize(("args", "env", "needle"), [
    (["--algo", "dqn"], {}, "--algo dqn needs a discrete action space"),
    (["--algo", "sac"], {"COIN_ENV__ACTION": "discrete"}, "--algo sac needs a continuous action space"),
    (["--algo", "td3"], {}, "train.algo"),
    (["--timesteps", "0"], {}, "--timesteps: train.timesteps"),
    (["--n-envs", "0"], {}, "--n-envs: train.n_envs"),
    (["--folds", "0"], {}, "--folds: train.folds"),
    (["--resume", "20260101T000000Z-train-abcdef"], {}, "no such run"),
    (["--probe", "--resume", "x"], {}, "--probe cannot be combined with --resume"),
    (["--tensorboard"], {}, "--tensorboard needs the tensorboard package"),
])
def test_bad_flags_exit_2_before_any_run(tmp_path: Path, args: list[str], env: dict[str, str], needle: str) -> None:
    if "--tensorboard" in args:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            pass
        else:
            pytest.skip("tensorboard is installed here: --tensorboard is valid")
    proc = _coin(tmp_path, "train", *args, env=env)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], proc.stderr
    assert _runs(tmp_path) == []  # refused before a run folder or any data was written
    assert not (tmp_path / "data").exists()


def test_too_many_folds_for_the_data_is_a_usage_error(tmp_path: Path) -> None:
    proc = _coin(tmp_path, "train", "--folds", "40", "--timesteps", "64")
    assert proc.returncode == 2, proc.stderr
    assert "use fewer --folds" in proc.stderr
    (run,) = _runs(tmp_path)
    assert json.loads((run / "meta.json").read_text())["status"] == "failed"
    assert last_line(proc.stdout) == run.name


def test_walk_forward_folds_with_subprocess_envs(tmp_path: Path) -> None:
    proc = _coin(tmp_path, "train", "--folds", "2", "--n-envs", "2", "--timesteps", "512", "--json")
    assert proc.returncode == 0, proc.stderr
    run_dir = tmp_path / "runs" / json.loads(proc.stdout)["run_id"]
    manifest = json.loads((run_dir / "train_manifest.json").read_text())
    assert manifest["n_envs"] == 2 and manifest["seeds"]["fold_model_seeds"] == [7, 8]
    first, second = manifest["folds"]
    assert first["test"]["end"] == second["test"]["start"] and second["test"]["end"] == 3000
    assert second["train"]["end"] > first["train"]["end"]  # expanding window
    for index in (0, 1):
        assert (run_dir / "folds" / str(index) / "best_model.zip").is_file()
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    # the test curve is both test blocks stitched (the last candle cannot be acted on)
    assert evaluation["test"]["metrics"]["agent"]["bars"] == first["test"]["bars"] + second["test"]["bars"] - 1
    assert len(evaluation["folds"]) == 2


# ---- one short PPO run shared by several tests --------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    cwd = tmp_path_factory.mktemp("train")
    proc = _coin(cwd, "train", "--timesteps", "2048", "--seed", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    return cwd, cwd / "runs" / payload["run_id"], payload


def test_end_to_end_artifacts_and_manifest(trained: tuple[Path, Path, dict]) -> None:
    _, run_dir, payload = trained
    for name in ARTIFACTS:
        assert (run_dir / name).is_file(), name
    manifest = json.loads((run_dir / "train_manifest.json").read_text())
    assert manifest["status"] == payload["status"] in ("promoted", "not_promoted")
    assert manifest["algo"] == "ppo" and manifest["timesteps"] == 2048 and manifest["seeds"]["seed"] == 3
    assert len(manifest["data"]["candles_sha256"]) == 64 and manifest["data"]["bootstrap_generated"] is True
    assert manifest["data"]["rows"] == 3000
    checks = manifest["promotion"]["checks"]
    assert set(checks) == {"val", "test"}
    # the gate's verdict is the arithmetic of the recorded numbers
    passed = all(c["agent_sharpe"] - c["best_baseline_sharpe"] > manifest["promotion"]["margin"]
                 for c in checks.values())
    assert (manifest["status"] == "promoted") == passed
    assert (manifest["status"] == "not_promoted") == bool(manifest["reasons"])
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["status"] == "ok" and meta["exit_code"] == 0

    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    for split in ("val", "test"):
        metrics = evaluation[split]["metrics"]
        assert set(metrics) == {"agent", "voltarget", "buyhold", "flat"}
        assert metrics["flat"]["trades"] == 0 and metrics["flat"]["total_return"] == 0.0
        assert metrics["buyhold"]["exposure"] > 0.9
        ci = evaluation[split]["sharpe_diff"]
        assert ci["low"] <= ci["high"]
        # every strategy was stepped over the same bars
        assert len({m["bars"] for m in metrics.values()}) == 1
    # a decision on bar t fills at bar t+1's open: the last candle of the data cannot be acted on
    assert evaluation["test"]["metrics"]["agent"]["bars"] == manifest["folds"][0]["test"]["bars"] - 1
    assert evaluation["val"]["metrics"]["agent"]["bars"] == manifest["folds"][0]["val"]["bars"]

    from coin_cli.features.spec import FeatureSpec

    features = json.loads((run_dir / "feature_manifest.json").read_text())
    assert features["implementation_hash"] == FeatureSpec.default().implementation_hash()
    edges = features["drift_reference"]["edges"]   # the runtime's drift reference: deciles per feature
    assert set(edges) == set(FeatureSpec.default().names)
    assert all(len(e) == 9 and e == sorted(e) for e in edges.values())
    curve = pd.read_csv(run_dir / "training_curve.csv")
    assert list(curve["timesteps"]) == [1024, 2048]
    svg = ET.fromstring((run_dir / "equity_test.svg").read_text())
    lines = {g.get("id") for g in svg.iter("{http://www.w3.org/2000/svg}g")}   # matplotlib gids
    assert {"line-agent", "line-voltarget", "line-buyhold", "line-flat"} <= lines


def test_saved_policy_equals_sb3_on_env_observations(trained: tuple[Path, Path, dict]) -> None:
    """SB3Policy (numpy) and the saved SB3 model + VecNormalize agree on real observations."""
    import pickle

    import stable_baselines3 as sb3

    from coin_cli.agents.policy import PolicyInput
    from coin_cli.agents.sb3 import SB3Policy
    from coin_cli.config import load_settings
    from coin_cli.data.service import load_or_bootstrap
    from coin_cli.env.trading_env import make_env

    cwd, run_dir, _ = trained
    policy = SB3Policy.load(run_dir)
    assert policy.promoted == (json.loads((run_dir / "train_manifest.json").read_text())["status"] == "promoted")
    model = sb3.PPO.load(run_dir / "model.zip", device="cpu")
    with open(run_dir / "vecnormalize.pkl", "rb") as fh:
        vecnorm = pickle.load(fh)
    settings = load_settings(run_dir / "config.yaml", env={})
    settings.paths.data_dir = cwd / "data"
    candles, _, _ = load_or_bootstrap(settings)
    env = make_env(settings, candles, mode="eval")
    obs, _ = env.reset()
    for step in range(300):
        expected, _ = model.predict(vecnorm.normalize_obs(obs[None]), deterministic=True)
        np.testing.assert_allclose(policy.action(obs), expected[0], atol=1e-5, rtol=0)
        weight = policy.act(PolicyInput(features={}, observation=obs))
        assert weight == pytest.approx(float(np.clip(expected[0][0], 0.0, 1.0)), abs=1e-5)
        obs, *_ = env.step_weight(weight)
        if step % 50 == 0:  # visit some positions too, not only the agent's own path
            obs, *_ = env.step_weight(float(step % 100 == 0))


def test_same_seed_same_data_same_numbers(trained: tuple[Path, Path, dict]) -> None:
    cwd, first_dir, _ = trained
    proc = _coin(cwd, "train", "--timesteps", "2048", "--seed", "3")  # human output this time
    assert proc.returncode == 0, proc.stderr
    run_id = last_line(proc.stdout)
    assert run_id != first_dir.name and (cwd / "runs" / run_id).is_dir()
    assert "agent" in proc.stdout and "voltarget" in proc.stdout  # the comparison table
    first = json.loads((first_dir / "evaluation.json").read_text())
    second = json.loads((cwd / "runs" / run_id / "evaluation.json").read_text())
    assert first == second
    m1 = json.loads((first_dir / "train_manifest.json").read_text())
    m2 = json.loads((cwd / "runs" / run_id / "train_manifest.json").read_text())
    assert m1["data"]["candles_sha256"] == m2["data"]["candles_sha256"]
    assert (first_dir / "policy.npz").read_bytes() == (cwd / "runs" / run_id / "policy.npz").read_bytes()


# ---- Ctrl-C -> checkpoint, interrupted; --resume continues ---------------------------------------

def _stop_training_mid_learn(tmp_path: Path, sig: int) -> tuple[int, str, str]:
    """Start a long `coin train`, send `sig` once it is inside model.learn: (exit code, stdout, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "coin_cli", "train", "--timesteps", "1000000"], cwd=tmp_path,
                            env=clean_env(FAST), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list((tmp_path / "runs").glob("*-train-*/folds/0")):
            time.sleep(0.2)
        time.sleep(3.0)  # well inside model.learn by now
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out, err


def test_sigterm_checkpoints_like_ctrl_c(tmp_path: Path) -> None:
    # systemd / cron `timeout` stop with SIGTERM: Python's default died without the checkpoint.
    code, out, err = _stop_training_mid_learn(tmp_path, signal.SIGTERM)
    assert code == 143, err
    (run,) = _runs(tmp_path)
    assert f"error: terminated (SIGTERM): checkpoint saved: coin train --resume {run.name}" in err
    assert last_line(out) == run.name
    assert json.loads((run / "meta.json").read_text())["exit_code"] == 143
    assert json.loads((run / "train_manifest.json").read_text())["status"] == "interrupted"
    assert (run / "checkpoint" / "model.zip").is_file()


def test_ctrl_c_checkpoints_and_resume_finishes(tmp_path: Path) -> None:
    code, out, err = _stop_training_mid_learn(tmp_path, signal.SIGINT)
    assert code == 130, err
    (run,) = _runs(tmp_path)
    assert f"error: interrupted: checkpoint saved: coin train --resume {run.name}" in err
    assert last_line(out) == run.name
    assert json.loads((run / "meta.json").read_text())["status"] == "interrupted"
    manifest = json.loads((run / "train_manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["resume"] == f"coin train --resume {run.name}"
    state = json.loads((run / "checkpoint" / "state.json").read_text())
    done = state["timesteps_done"]
    assert 0 < done < 1_000_000 and (run / "checkpoint" / "model.zip").is_file()

    refused = _coin(tmp_path, "train", "--resume", run.name, "--algo", "a2c")
    assert refused.returncode == 2 and "--resume cannot be combined with --algo" in refused.stderr
    too_small = _coin(tmp_path, "train", "--resume", run.name, "--timesteps", str(done))
    assert too_small.returncode == 2 and "give a larger total" in too_small.stderr

    resumed = _coin(tmp_path, "train", "--resume", run.name, "--timesteps", str(done + 1024), "--json")
    assert resumed.returncode == 0, resumed.stderr
    payload = json.loads(resumed.stdout)
    new_dir = tmp_path / "runs" / payload["run_id"]
    new_manifest = json.loads((new_dir / "train_manifest.json").read_text())
    assert new_manifest["resumed_from"] == run.name
    assert new_manifest["timesteps"] == done + 1024
    assert new_manifest["status"] in ("promoted", "not_promoted")
    # the curve continues the interrupted one (same rows first, then later steps)
    curve = pd.read_csv(new_dir / "training_curve.csv")
    assert len(curve) >= len(state["curve"])
    assert curve["timesteps"].is_monotonic_increasing and curve["timesteps"].iloc[-1] > done
    assert (new_dir / "model.zip").is_file()
    assert not os.path.exists(new_dir / "checkpoint")


# ---- the promotion gate: a learnable edge promotes, a random walk does not -------------------------

def _candles(log_returns: np.ndarray, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed + 1)
    rows = log_returns.size
    close = 100.0 * np.exp(np.cumsum(log_returns))
    open_ = np.concatenate([[100.0], close[:-1]])
    wick = np.abs(rng.normal(0.0, 0.001, size=(2, rows)))
    volume = 1000.0 * np.exp(rng.normal(0.0, 0.3, rows))
    open_time = 1_600_000_000_000 // 3_600_000 * 3_600_000 + np.arange(rows, dtype=np.int64) * 3_600_000
    return pd.DataFrame({
        "open_time": open_time, "open": open_, "high": np.maximum(open_, close) * (1 + wick[0]),
        "low": np.minimum(open_, close) * (1 - wick[1]), "close": close, "volume": volume,
        "close_time": open_time + 3_599_999, "quote_volume": volume * close,
        "trades": np.full(rows, 100, dtype=np.int64), "taker_buy_base": volume / 2,
        "taker_buy_quote": volume * close / 2,
    })


def edge_market(rows: int = 3000, seed: int = 1) -> pd.DataFrame:
    """Trends that alternate every 24-72 bars: +-0.4% a bar under 0.2% noise. The sign of the
    last few returns predicts the next one, so going long in up-trends and flat in down-trends
    beats every baseline after costs, while buy-and-hold gains little over a full cycle."""
    rng = np.random.default_rng(seed)
    sign = np.empty(rows)
    i, s = 0, 1.0
    while i < rows:
        n = int(rng.integers(24, 73))
        sign[i:i + n] = s
        i, s = i + n, -s
    return _candles(sign * 0.004 + rng.normal(0.0, 0.002, rows), seed)


def random_walk_market(rows: int = 3000, seed: int = 1) -> pd.DataFrame:
    """No signal at all: i.i.d. returns with zero mean."""
    rng = np.random.default_rng(seed)
    return _candles(rng.normal(0.0, 0.01, rows), seed)


@pytest.mark.parametrize(("market", "expected"), [(edge_market, "promoted"), (random_walk_market, "not_promoted")],
                         ids=["edge", "random-walk"])
def test_promotion_gate(tmp_path: Path, market, expected: str) -> None:
    from coin_cli.data.store import CandleStore

    CandleStore(tmp_path / "data", "binance").merge("BTCUSDT", "1h", market(), source="csv")
    # PPO on {flat, long} with a short observation window: small enough to learn in CI time
    env = {"COIN_ENV__ACTION": "discrete", "COIN_ENV__LOOKBACK": "2"}
    proc = _coin(tmp_path, "train", "--timesteps", "4096", "--seed", "7", "--json", env=env)
    assert proc.returncode == 0, proc.stderr  # training succeeded either way; the verdict is in the manifest
    payload = json.loads(proc.stdout)
    manifest = json.loads((tmp_path / "runs" / payload["run_id"] / "train_manifest.json").read_text())
    checks = manifest["promotion"]["checks"]
    assert payload["status"] == manifest["status"] == expected, checks
    assert (tmp_path / "runs" / payload["run_id"] / "model.zip").is_file()  # saved either way
    if expected == "promoted":
        assert manifest["reasons"] == []
        for split in ("val", "test"):
            assert checks[split]["agent_sharpe"] > checks[split]["best_baseline_sharpe"]
            assert checks[split]["ci_low"] > 0  # the edge is not bootstrap noise
    else:
        assert manifest["reasons"]
