"""One sweep trial, as Ray Tune runs it in a worker (on this machine or another node).

The worker needs no candle store: the candles arrive as an argument from Ray's object store
(`tune.with_parameters`). The trial is a normal `coin train` run folder, trained and evaluated on
validation only; it reports the validation Sharpe after costs to Tune at every evaluation (ASHA
stops bad trials on it) and, with each report, the run folder as a Tune checkpoint, which Tune's
storage (a shared path or an object-store URI) brings back to the head.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

TRIAL_ARGV = ["coin", "train", "--sweep", "(trial)"]


def run_trial(config: dict[str, Any], *, candles: Any, data_info: dict[str, Any], base: dict[str, Any],
              space: Any) -> None:
    """The Tune function trainable: `config` is the sampled point; `base` the sweep's settings."""
    from ray import tune

    from coin_cli.config import Settings
    from coin_cli.pipelines.train_rl import check_request, train
    from coin_cli.runs import Run
    from coin_cli.sweep.space import apply

    values = space.decode(config)
    work = Path(tempfile.mkdtemp(prefix="coin-trial-"))
    settings = apply(Settings.model_validate(base), values)
    settings = settings.model_copy(update={"paths": settings.paths.model_copy(
        update={"runs_dir": work, "data_dir": work / "no-candle-store"})})  # candles come from the object store
    check_request(settings)
    iteration = {"n": 0}

    def report(metrics: dict[str, Any], run_dir: Path, final: bool) -> None:
        iteration["n"] += 1
        # inside the trial's folder: a report Tune answers with a stop does not return, the finally below cleans up
        snapshot = Path(tempfile.mkdtemp(prefix="checkpoint-", dir=work))
        shutil.copytree(run_dir, snapshot / "run", dirs_exist_ok=True)
        tune.report({**metrics, "final": final, "run_id": run_dir.name},
                    checkpoint=tune.Checkpoint.from_directory(str(snapshot / "run")))
        shutil.rmtree(snapshot, ignore_errors=True)  # Tune copied it into its storage during report

    try:
        with Run(work, "train", settings, argv=TRIAL_ARGV) as run:
            summary = train(settings, run, data=(candles, data_info, bool(data_info.get("bootstrap_generated"))),
                            evaluate_test=False, on_evaluation=lambda m: report(m, run.dir, False))
        report({key: summary[key] for key in ("val_sharpe", "val_return", "val_turnover", "val_fees",
                                              "duration_s")}, run.dir, True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
