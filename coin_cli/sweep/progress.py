"""Trial events from Ray Tune to the command's renderer (imported by the sweep service only: ray).

Tune pickles its callbacks with the experiment (tuner.pkl, written when the Tuner is built) and a
resumed sweep runs the unpickled ones. So the callback Tune holds carries nothing: no renderer (a
live table on a terminal holds the tty, which cannot be pickled), no statuses (a resumed sweep would
fill a copy nobody reads). It forwards every event to this process's `current` SweepProgress.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ray.tune import Callback

from coin_cli.sweep.service import METRIC


class SweepProgress:
    """This process's sweep: where trial events go, and the statuses for the trials table."""

    def __init__(self, on_event: Callable[[dict[str, Any]], None] | None, space: Any) -> None:
        self.on_event = on_event
        self.space = space
        self.statuses: dict[str, str] = {}
        self.best: dict[str, float] = {}
        self.interrupted = False

    def emit(self, trial: Any, status: str) -> None:
        self.statuses[trial.trial_id] = status
        if self.on_event is not None:
            self.on_event({"trial_id": trial.trial_id, "status": status, METRIC: self.best.get(trial.trial_id),
                           "params": self.space.decode(trial.config or {})})

    def result(self, trial: Any, result: dict[str, Any]) -> None:
        value = result.get(METRIC)
        if value is not None:
            if result.get("final"):
                self.best[trial.trial_id] = float(value)
            else:
                self.best[trial.trial_id] = max(float(value), self.best.get(trial.trial_id, float("-inf")))
        self.emit(trial, "finished" if result.get("final") else "running")


current: SweepProgress | None = None


def start(on_event: Callable[[dict[str, Any]], None] | None, space: Any) -> tuple[SweepProgress, TuneProgress]:
    """The process's progress (read by the service) and the callback to give Tune."""
    global current
    current = SweepProgress(on_event, space)
    return current, TuneProgress()


class TuneProgress(Callback):
    """Stateless: pickled with the experiment, it forwards to `current` in whichever process runs it."""

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        pass

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if current is not None:
            current.emit(trial, "running")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if current is not None:
            current.result(trial, result)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if current is not None:
            current.emit(trial, "finished" if (trial.last_result or {}).get("final") else "stopped")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if current is not None:
            current.emit(trial, "error")

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if current is None:
            return
        for trial in trials:
            if trial.status in ("RUNNING", "PENDING", "PAUSED"):
                current.statuses[trial.trial_id] = trial.status.lower()
                current.interrupted = True
