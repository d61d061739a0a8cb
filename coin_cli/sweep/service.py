"""`coin train --sweep`: Ray Tune runs the trials, Optuna's sampler proposes them, ASHA stops bad
ones early on the validation Sharpe reported at each evaluation; the trials are ranked on
validation only, the best one alone is evaluated on test and put through the promotion gate.

Ray is an optional extra: this module is the only importer of ray (besides the trial function it
ships to the workers), and only inside `run_sweep` / `resume_sweep`.

Run folder: config.yaml, meta.json, space.yaml (the space as given), sweep.json (the trials, the
best one, the verdict), trials.csv, trials/<trial_id>/ (each a normal train run folder),
feature_manifest.json (the best trial's, for the runtime's drift monitor), tune/ (Tune's
experiment: what --resume restores; elsewhere with --storage).
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coin_cli.config import Settings, dump_settings
from coin_cli.errors import DataError, UsageError
from coin_cli.fsio import atomic_write_json, atomic_write_text
from coin_cli.runs import Run
from coin_cli.sweep.space import SweepSpace, apply, load_space

log = logging.getLogger("coin.sweep")

METRIC = "val_sharpe"
EXPERIMENT = "tune"
SWEEP_FILE = "sweep.json"
EXTRA_HINT = "coin train --sweep needs the sweep extra: pip install -e '.[sweep]' (Ray Tune and Optuna)"
Event = Callable[[dict[str, Any]], None]


@dataclass
class SweepRequest:
    space_file: Path | None
    trials: int | None = None
    max_concurrent: int | None = None
    ray_address: str | None = None
    storage: str | None = None
    resume: str | None = None


def check_extra() -> None:
    """UsageError (exit 2) naming the extra when Ray Tune or Optuna is missing."""
    try:
        import optuna  # noqa: F401
        import ray.tune  # noqa: F401
    except ImportError:
        raise UsageError(EXTRA_HINT) from None


def prepare(settings: Settings, request: SweepRequest) -> tuple[Settings, SweepSpace, SweepRequest]:
    """Everything that can be refused before a run folder exists: the extra, the space file, the
    flags, --resume's sweep. Returns the base settings (with `fixed`), the space and the request."""
    check_extra()
    if request.resume is not None:
        old = Path(settings.paths.runs_dir) / request.resume
        if not (old / SWEEP_FILE).is_file():
            raise UsageError(f"--resume {request.resume}: no sweep run folder {old} (with {SWEEP_FILE})")
        if request.space_file is None:
            request.space_file = old / "space.yaml"
        settings = _resumed_settings(settings, old)
    if request.space_file is None:
        raise UsageError("--sweep needs a search-space file (see examples/sweeps/)")
    space = load_space(request.space_file, settings)
    request.trials = request.trials or space.trials or 4
    request.max_concurrent = request.max_concurrent or space.max_concurrent or 1
    if request.trials < 1 or request.max_concurrent < 1:
        raise UsageError("--trials and --max-concurrent: expected whole numbers >= 1")
    base = apply(settings, space.fixed)
    from coin_cli.pipelines.train_rl import check_request

    check_request(base)
    return base, space, request


def _resumed_settings(settings: Settings, old: Path) -> Settings:
    """The interrupted sweep's own base settings (its config.yaml), with this invocation's paths:
    the restored trials must get the settings they were sampled for."""
    from coin_cli.config import load_settings

    resumed = load_settings(old / "config.yaml", env={})
    return resumed.model_copy(update={"paths": settings.paths})


def run_sweep(settings: Settings, space: SweepSpace, request: SweepRequest, run: Run,
              on_event: Event | None = None) -> dict[str, Any]:
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from coin_cli.data.service import load_or_bootstrap
    from coin_cli.sweep import progress as sweep_progress
    from coin_cli.sweep.trial import run_trial

    started = time.perf_counter()
    shutil.copyfile(space.path, run.dir / "space.yaml")
    candles, data_manifest, generated = load_or_bootstrap(settings)
    data_info = {"source": data_manifest.get("source"), "sha256": data_manifest.get("sha256"),
                 "bootstrap_generated": generated}
    t = settings.train
    # ASHA's max_t counts reports: one per evaluation (every eval_freq steps, and the end of each
    # fold's training when that is not one), plus the trial's final report
    evaluations = t.folds * (t.timesteps // t.eval_freq + 1) + 1

    _init_ray(request)
    try:
        storage, name = _storage(run, request)
        trainable = tune.with_parameters(run_trial, candles=candles, data_info=data_info,
                                         base=dump_settings(settings), space=space)
        trainable = tune.with_resources(trainable, {"cpu": 1})
        progress, callback = sweep_progress.start(on_event, space)
        run_config = tune.RunConfig(name=name, storage_path=storage, verbose=0, callbacks=[callback],
                                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                                    failure_config=tune.FailureConfig(max_failures=0))
        if request.resume is not None:
            old_storage, old_name = _old_storage(settings, request.resume)
            tuner = tune.Tuner.restore(f"{old_storage.rstrip('/')}/{old_name}", trainable, resume_unfinished=True,
                                       resume_errored=False, restart_errored=False)
        else:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            searcher = OptunaSearch(metric=METRIC, mode="max",
                                    sampler=optuna.samplers.TPESampler(seed=t.seed, n_startup_trials=min(
                                        10, max(1, request.trials // 2))))
            scheduler = ASHAScheduler(time_attr="training_iteration", max_t=max(1, evaluations),
                                      grace_period=1, reduction_factor=2)
            tuner = tune.Tuner(trainable, param_space=space.tune_space(), run_config=run_config,
                               tune_config=tune.TuneConfig(metric=METRIC, mode="max", search_alg=searcher,
                                                           scheduler=scheduler, num_samples=request.trials,
                                                           max_concurrent_trials=request.max_concurrent,
                                                           # a trial is a stateless function: the next one
                                                           # runs in the same worker, which has torch and
                                                           # SB3 imported already (Ray's per-trial start-up)
                                                           reuse_actors=True))
        with _sigterm_stops_tune() as terminated:
            grid = tuner.fit()
        rows = _collect(grid, space, run, progress.statuses)
    finally:
        ray.shutdown()
    interrupted = progress.interrupted or len(rows) < request.trials or any(
        r["status"] in ("running", "pending") for r in rows)
    summary = _finish(settings, run, space, request, rows, candles, data_info, interrupted,
                      round(time.perf_counter() - started, 1))
    if interrupted:
        from coin_cli.errors import Terminated

        done = sum(r["status"] in ("finished", "stopped") for r in rows)
        stop = Terminated if terminated else KeyboardInterrupt   # exit 143 or 130, finished trials kept
        raise stop(f"{done} finished trials kept; continue with "
                   f"coin train --sweep {space.path} --resume {run.run_id}")
    return summary


@contextlib.contextmanager
def _sigterm_stops_tune() -> Iterator[list[int]]:
    """SIGTERM (cron's timeout, systemd) during fit: Tune's own graceful stop (its SIGUSR1 handler,
    the one Ctrl-C gets) instead of unwinding through it, so finished trials are collected too."""
    terminated: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield terminated
        return

    def on_term(signum: int, _frame: Any) -> None:
        terminated.append(signum)
        os.kill(os.getpid(), signal.SIGUSR1)

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield terminated
    finally:
        signal.signal(signal.SIGTERM, previous)


# ---- Ray ---------------------------------------------------------------------------------------

def _init_ray(request: SweepRequest) -> None:
    import ray

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's console output stays off stdout
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    if request.ray_address:
        try:
            ray.init(address=request.ray_address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            from coin_cli.errors import ExchangeError

            raise ExchangeError(f"--ray-address {request.ray_address}: cannot join the Ray cluster ({exc})") from None
    else:  # "local": a new instance, even where `ray start` left a cluster that ray.init() would join
        ray.init(address="local", num_cpus=request.max_concurrent, **quiet)


def _storage(run: Run, request: SweepRequest) -> tuple[str, str]:
    if request.storage:
        return request.storage, run.run_id
    return str(run.dir.resolve()), EXPERIMENT


def _old_storage(settings: Settings, resume: str) -> tuple[str, str]:
    from coin_cli.agents.run_files import read_run_json

    old = read_run_json(Path(settings.paths.runs_dir) / resume / SWEEP_FILE)
    tune_info = old.get("tune") or {}
    storage = tune_info.get("storage")
    name = tune_info.get("name")
    if not storage or not name:
        raise DataError(f"{Path(settings.paths.runs_dir) / resume / SWEEP_FILE}: no Tune experiment recorded")
    return str(storage), str(name)


# ---- results -------------------------------------------------------------------------------------

def _collect(grid: Any, space: SweepSpace, run: Run, statuses: dict[str, str]) -> list[dict[str, Any]]:
    """One row per trial; each trial's latest checkpoint (its run folder) copied to trials/<id>/."""
    rows = []
    for result in grid:
        metrics = dict(result.metrics or {})
        trial_id = str(metrics.get("trial_id") or Path(result.path).name)
        status = statuses.get(trial_id) or ("error" if result.error else
                                            "finished" if metrics.get("final") else "stopped")
        if result.error is not None:
            status = "error"
        row: dict[str, Any] = {"trial_id": trial_id, "status": status, METRIC: metrics.get(METRIC),
                               "val_return": metrics.get("val_return"), "val_turnover": metrics.get("val_turnover"),
                               "evaluations": metrics.get("training_iteration"), "folder": None}
        row.update({f"param.{k}": v for k, v in space.decode(result.config or {}).items()})
        if result.checkpoint is not None:
            target = run.dir / "trials" / trial_id
            if target.exists():
                shutil.rmtree(target)
            result.checkpoint.to_directory(str(target))
            row["folder"] = f"trials/{trial_id}"
        if result.error is not None:
            row["error"] = str(result.error).strip().splitlines()[-1][:300]
        rows.append(row)
    rows.sort(key=lambda r: (r["status"] != "finished", -(r[METRIC] if r[METRIC] is not None else -1e300)))
    return rows


def _finish(settings: Settings, run: Run, space: SweepSpace, request: SweepRequest, rows: list[dict[str, Any]],
            candles: Any, data_info: dict[str, Any], interrupted: bool, duration_s: float) -> dict[str, Any]:
    from coin_cli.pipelines.train_select import complete_on_test

    finished = [r for r in rows if r["status"] == "finished" and r["folder"] and r[METRIC] is not None]
    best = finished[0] if finished and not interrupted else None
    sweep: dict[str, Any] = {
        "sweep_id": run.run_id, "metric": METRIC, "mode": "max", "status": "interrupted" if interrupted else None,
        "trials_requested": request.trials, "trials_tried": len(rows), "max_concurrent": request.max_concurrent,
        "ray": {"address": request.ray_address or "local", "cpus": None if request.ray_address
                else request.max_concurrent},
        "tune": {"storage": _storage(run, request)[0], "name": _storage(run, request)[1]},
        "space": space.to_dict(), "resumed_from": request.resume, "trials": rows,
        "best_trial": None, "best_folder": None, "promotion": None, "duration_s": duration_s,
    }
    if best is None and not interrupted:
        sweep["status"] = "no_trial_finished"
    if best is not None:
        best_dir = run.dir / best["folder"]
        best_settings = apply(settings, {k.removeprefix("param."): v for k, v in best.items()
                                         if k.startswith("param.")})
        manifest = complete_on_test(best_settings, best_dir, candles,
                                    {**data_info, "rows": len(candles)}, trials_tried=len(rows))
        best["status_gate"] = manifest["status"]
        sweep.update(status=manifest["status"], best_trial=best["trial_id"], best_folder=best["folder"],
                     promotion=manifest["promotion"], reasons=manifest["reasons"])
        checks = manifest["promotion"]["checks"]
        sweep["best"] = {"val_sharpe": checks["val"]["agent_sharpe"], "test_sharpe": checks["test"]["agent_sharpe"],
                         "val_best_baseline": checks["val"]["best_baseline"],
                         "test_best_baseline": checks["test"]["best_baseline"],
                         "test_sharpe_best_baseline": checks["test"]["best_baseline_sharpe"]}
        shutil.copyfile(best_dir / "feature_manifest.json", run.dir / "feature_manifest.json")
    atomic_write_json(run.dir / SWEEP_FILE, sweep)
    atomic_write_text(run.dir / "trials.csv", _csv(rows))
    summary = {key: sweep[key] for key in ("sweep_id", "status", "metric", "trials_requested", "trials_tried",
                                           "max_concurrent", "best_trial", "best_folder", "promotion", "duration_s")}
    summary["best"] = sweep.get("best")
    summary["reasons"] = sweep.get("reasons", [])
    summary["trials"] = rows
    summary["ray"] = sweep["ray"]
    return summary


def _csv(rows: list[dict[str, Any]]) -> str:
    keys = list(dict.fromkeys(k for r in rows for k in r)) or ["trial_id"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def table_rows(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """The trials table: best validation Sharpe first (the command renders it)."""
    params = list(dict.fromkeys(k for r in rows for k in r if k.startswith("param.")))
    columns = ["trial", "status", METRIC, "val_return", "val_turnover", *[p.removeprefix("param.") for p in params]]
    out = []
    for r in rows:
        status = r["status"] + (f" ({r['status_gate']})" if r.get("status_gate") else "")
        out.append([r["trial_id"], status, r[METRIC], r.get("val_return"), r.get("val_turnover"),
                    *[r.get(p) for p in params]])
    return columns, out
