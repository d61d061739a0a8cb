"""SB3 callbacks of `coin train`: progress reporting, the training curve, and saving the
VecNormalize statistics together with each new best model. Imports stable_baselines3, so only
the training service imports this module (lazily)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

Progress = Callable[[int, int | None, str | None], None]


class ProgressCallback(BaseCallback):
    """Reports `(done, total, text)` with steps/s and the latest validation reward."""

    def __init__(self, progress: Progress | None, *, offset: int, total: int, label: str, every: int = 256):
        super().__init__()
        self.progress = progress
        self.offset, self.total, self.label, self.every = offset, total, label, every
        self.latest_eval: float | None = None
        self._t0 = time.perf_counter()
        self._start_steps = 0

    def _on_training_start(self) -> None:
        self._t0 = time.perf_counter()
        self._start_steps = self.num_timesteps

    def steps_per_second(self) -> float:
        elapsed = time.perf_counter() - self._t0
        return (self.num_timesteps - self._start_steps) / elapsed if elapsed > 0 else 0.0

    def _on_step(self) -> bool:
        if self.progress is not None and self.n_calls % self.every == 0:
            self.report()
        return True

    def report(self) -> None:
        if self.progress is None:
            return
        text = f"{self.label} {self.steps_per_second():,.0f} steps/s"
        if self.latest_eval is not None:
            text += f", val reward {self.latest_eval:+.4f}"
        self.progress(self.offset + self.num_timesteps, self.total, text)


class CurveCallback(BaseCallback):
    """Called by EvalCallback after each validation run: appends one training-curve row."""

    def __init__(self, fold: int, rows: list[dict[str, Any]], progress_cb: ProgressCallback | None = None,
                 after_eval: Callable[[Any], None] | None = None):
        super().__init__()
        self.fold, self.rows, self.progress_cb = fold, rows, progress_cb
        self.after_eval = after_eval  # a sweep trial: report the validation metric to Ray Tune

    def _on_step(self) -> bool:
        evaluator = self.parent
        val_reward = float(evaluator.last_mean_reward) if evaluator is not None else float("nan")
        best = float(evaluator.best_mean_reward) if evaluator is not None else float("nan")
        self.add_row(self.model, val_reward, best)
        if self.progress_cb is not None:
            self.progress_cb.latest_eval = val_reward
            self.progress_cb.report()
        if self.after_eval is not None:
            self.after_eval(self.model)
        return True

    def add_row(self, model: Any, val_reward: float, best_val_reward: float) -> None:
        """One curve row; also called for the evaluation at the end of training, so a run shorter
        than train.eval_freq still has a curve (one point)."""
        episodes = [info["r"] for info in (model.ep_info_buffer or [])]
        self.rows.append({
            "fold": self.fold,
            "timesteps": int(model.num_timesteps),
            "val_reward": val_reward,
            "best_val_reward": best_val_reward,
            "train_episode_reward": float(np.mean(episodes)) if episodes else float("nan"),
            "steps_per_s": round(self.progress_cb.steps_per_second(), 1) if self.progress_cb else float("nan"),
        })


class SaveNormalizationCallback(BaseCallback):
    """On a new best validation reward: save the VecNormalize statistics beside best_model.zip,
    so the best model is always paired with the statistics it was evaluated with."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = Path(path)

    def _on_step(self) -> bool:
        vecnorm = self.model.get_vec_normalize_env()
        if vecnorm is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            vecnorm.save(str(self.path))
        return True
