"""--resume: which runs can be resumed, with which flags, and what is carried over."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coin_cli.config import load_settings
from coin_cli.errors import UsageError
from coin_cli.pipelines import checkpoint as ckpt
from coin_cli.runs import Run


def _settings(runs: Path, **train: object):
    overrides = {"paths.runs_dir": (runs, "--runs-dir"), **{f"train.{k}": (v, f"--{k}") for k, v in train.items()}}
    return load_settings(None, env={}, overrides=overrides)


def _interrupted(runs: Path, **train: object) -> Run:
    """A train run stopped between folds 0 and 1 (fold 0 finished, no model checkpoint)."""
    run = Run(runs, "train", _settings(runs, **train))
    (run.dir / "folds" / "0").mkdir(parents=True)
    (run.dir / "folds" / "0" / "traces.npz").write_bytes(b"fold 0 traces")
    curve = [{"fold": 0, "timesteps": 1024, "val_reward": 0.1}]
    ckpt.save_fold_boundary(run, 1, curve)
    run.finish("interrupted", 130)
    return run


def test_resume_uses_the_interrupted_runs_settings(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run = _interrupted(runs, algo="a2c", seed=11, folds=2, timesteps=5000)
    current = _settings(runs)  # defaults: ppo, seed 7
    resumed = ckpt.resume_settings(current, run.run_id, [])
    assert (resumed.train.algo, resumed.train.seed, resumed.train.folds) == ("a2c", 11, 2)
    assert resumed.train.timesteps == 5000 and resumed.paths.runs_dir == runs
    more = ckpt.resume_settings(_settings(runs, timesteps=9000), run.run_id, ["--timesteps"])
    assert more.train.timesteps == 9000
    manifest = json.loads((run.dir / "train_manifest.json").read_text())
    assert manifest == {"status": "interrupted", "fold": 1, "timesteps_done": 0,
                        "resume": f"coin train --resume {run.run_id}"}


def test_resume_refusals_name_the_problem(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run = _interrupted(runs)
    current = _settings(runs)
    with pytest.raises(UsageError, match="no such run"):
        ckpt.resume_settings(current, "20260101T000000Z-train-000000", [])
    with pytest.raises(UsageError, match="not a run id"):
        ckpt.resume_settings(current, "../elsewhere", [])
    finished = Run(runs, "train", current)
    with pytest.raises(UsageError, match="has no checkpoint"):
        ckpt.resume_settings(current, finished.run_id, [])
    with pytest.raises(UsageError, match="cannot be combined with --algo, --seed"):
        ckpt.resume_settings(current, run.run_id, ["--algo", "--seed"])
    (run.dir / "checkpoint" / "state.json").write_text(json.dumps({"fold": 0, "timesteps_done": 6000}))
    with pytest.raises(UsageError, match="already trained 6000 steps"):
        ckpt.resume_settings(_settings(runs, timesteps=6000), run.run_id, ["--timesteps"])
    (run.dir / "checkpoint" / "state.json").write_text("{not json")
    with pytest.raises(UsageError, match="unreadable checkpoint state"):
        ckpt.resume_settings(current, run.run_id, [])


def test_load_state_carries_finished_folds_into_the_new_run(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    old = _interrupted(runs)
    settings = ckpt.resume_settings(_settings(runs), old.run_id, [])
    new = Run(runs, "train", settings)
    state = ckpt.load_state(settings, old.run_id, new)
    assert state.fold == 1 and state.timesteps_done == 0 and not state.has_model
    assert state.curve == [{"fold": 0, "timesteps": 1024, "val_reward": 0.1}]
    assert state.best_mean_reward == float("-inf")
    assert (new.dir / "folds" / "0" / "traces.npz").read_bytes() == b"fold 0 traces"
    assert not (new.dir / "checkpoint").exists()


def test_curve_csv_has_a_header_even_when_empty(tmp_path: Path) -> None:
    ckpt.write_curve(tmp_path / "c.csv", [])
    assert (tmp_path / "c.csv").read_text() == ",".join(ckpt.CURVE_FIELDS) + "\n"
