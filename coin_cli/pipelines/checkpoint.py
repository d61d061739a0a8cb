"""Ctrl-C checkpoints of `coin train` and `--resume RUN_ID`.

An interrupted run keeps `checkpoint/` (model.zip, vecnormalize.pkl, replay_buffer.pkl for
off-policy algorithms, state.json: fold, curve, best validation reward). `--resume` opens a NEW
run folder (every command run has its own), trains with the interrupted run's own settings,
copies its finished folds and current best model, and continues the fold where it stopped.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coin_cli.config import Settings, load_settings
from coin_cli.errors import UsageError
from coin_cli.fsio import atomic_write_json, atomic_write_text
from coin_cli.runs import Run

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.json"
CURVE_FIELDS = ("fold", "timesteps", "val_reward", "best_val_reward", "train_episode_reward", "steps_per_s")
RESUMABLE_FLAGS = ("--timesteps",)


@dataclass(frozen=True)
class TrainState:
    source: Path  # the interrupted run's folder
    fold: int
    timesteps_done: int
    curve: list[dict[str, Any]]
    best_mean_reward: float

    @property
    def checkpoint(self) -> Path:
        return self.source / CHECKPOINT_DIR

    @property
    def has_model(self) -> bool:
        """False when the run stopped between folds: the fold restarts from scratch."""
        return (self.checkpoint / "model.zip").is_file()


def _run_dir(settings: Settings, run_id: str) -> Path:
    if not run_id or "/" in run_id or run_id in (".", ".."):
        raise UsageError(f"--resume: {run_id!r} is not a run id")
    source = Path(settings.paths.runs_dir) / run_id
    if not source.is_dir():
        raise UsageError(f"--resume {run_id}: no such run in {settings.paths.runs_dir}")
    if not (source / CHECKPOINT_DIR / STATE_FILE).is_file():
        raise UsageError(f"--resume {run_id}: the run has no checkpoint (only an interrupted `coin train` "
                         "run can be resumed)")
    return source


def _read_state(source: Path) -> dict[str, Any]:
    path = source / CHECKPOINT_DIR / STATE_FILE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        int(state["fold"]), int(state["timesteps_done"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"--resume: {path}: unreadable checkpoint state ({exc})") from None
    return state


def resume_settings(settings: Settings, run_id: str, flags_given: list[str]) -> Settings:
    """The interrupted run's settings (paths from the current invocation; --timesteps may raise
    the total). Other training flags conflict with --resume."""
    source = _run_dir(settings, run_id)
    conflicting = [flag for flag in flags_given if flag not in RESUMABLE_FLAGS]
    if conflicting:
        raise UsageError(f"--resume cannot be combined with {', '.join(conflicting)}: "
                         f"the run's own settings ({source / 'config.yaml'}) are used")
    overrides: dict[str, tuple[Any, str]] = {
        "paths.runs_dir": (settings.paths.runs_dir, "--runs-dir"),
        "paths.data_dir": (settings.paths.data_dir, "--data-dir"),
    }
    if "--timesteps" in flags_given:
        overrides["train.timesteps"] = (settings.train.timesteps, "--timesteps")
    resumed = load_settings(source / "config.yaml", env={}, overrides=overrides)
    state = _read_state(source)
    if resumed.train.timesteps <= int(state["timesteps_done"]):
        raise UsageError(f"--timesteps {resumed.train.timesteps}: the run already trained "
                         f"{state['timesteps_done']} steps of fold {int(state['fold']) + 1}; give a larger total")
    return resumed


def load_state(settings: Settings, run_id: str, run: Run) -> TrainState:
    """Read the checkpoint and bring the finished folds (and the current best model) into `run`."""
    source = _run_dir(settings, run_id)
    state = _read_state(source)
    if (source / "folds").is_dir():
        shutil.copytree(source / "folds", run.dir / "folds", dirs_exist_ok=True)
    return TrainState(source=source, fold=int(state["fold"]), timesteps_done=int(state["timesteps_done"]),
                      curve=list(state.get("curve", [])), best_mean_reward=float(state.get("best_mean_reward",
                                                                                          float("-inf"))))


def has_checkpoint(run: Run) -> bool:
    return (run.dir / CHECKPOINT_DIR / STATE_FILE).is_file()


def save_fold_boundary(run: Run, fold: int, curve: list[dict[str, Any]]) -> None:
    """Interrupted outside training (env start-up, evaluation): the finished folds are kept and
    fold `fold` starts again on --resume."""
    folder = run.dir / CHECKPOINT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / STATE_FILE, {"fold": fold, "timesteps_done": 0, "curve": curve})
    _interrupted_manifest(run, fold, 0)


def _interrupted_manifest(run: Run, fold: int, done: int) -> None:
    atomic_write_json(run.dir / "train_manifest.json", {
        "status": "interrupted", "fold": fold, "timesteps_done": done,
        "resume": f"coin train --resume {run.run_id}",
    })


def save_checkpoint(run: Run, model: Any, fold: int, curve: list[dict[str, Any]], best_mean_reward: float) -> Path:
    """Everything --resume needs; state.json is written last, so a checkpoint without it is ignored."""
    folder = run.dir / CHECKPOINT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    model.save(str(folder / "model.zip"))
    vecnorm = model.get_vec_normalize_env()
    if vecnorm is not None:
        vecnorm.save(str(folder / "vecnormalize.pkl"))
    if hasattr(model, "replay_buffer") and model.replay_buffer is not None:
        model.save_replay_buffer(str(folder / "replay_buffer.pkl"))
    state = {"fold": fold, "timesteps_done": int(model.num_timesteps), "curve": curve,
             "best_mean_reward": best_mean_reward if best_mean_reward != float("-inf") else None}
    if state["best_mean_reward"] is None:
        state.pop("best_mean_reward")
    atomic_write_json(folder / STATE_FILE, state)
    _interrupted_manifest(run, fold, state["timesteps_done"])
    return folder


def restore_model(settings: Settings, state: TrainState, venv: Any) -> tuple[Any, Any]:
    """The checkpointed model attached to a fresh `venv` (VecNormalize statistics restored)."""
    from stable_baselines3.common.vec_env import VecNormalize

    from coin_cli.agents.sb3 import load_model

    stats = state.checkpoint / "vecnormalize.pkl"
    if isinstance(venv, VecNormalize) and stats.is_file():
        inner = venv.venv
        venv = VecNormalize.load(str(stats), inner)
        venv.training = True
    model = load_model(settings.train.algo, state.checkpoint / "model.zip", venv)
    buffer = state.checkpoint / "replay_buffer.pkl"
    if buffer.is_file() and hasattr(model, "load_replay_buffer"):
        model.load_replay_buffer(str(buffer))
    return model, venv


def write_curve(path: Path, rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(CURVE_FIELDS), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())
