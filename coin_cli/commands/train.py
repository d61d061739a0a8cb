"""`coin train` and `coin train --probe`."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from coin_cli.commands._options import JSON_OPTION, app_context, complete_interval, complete_symbol, complete_train_run


def train(
    ctx: typer.Context,
    probe: bool = typer.Option(False, "--probe", help="Run the end-to-end readiness gate instead of training."),
    symbol: str | None = typer.Option(None, "--symbol", help="data.symbol", autocompletion=complete_symbol),
    interval: str | None = typer.Option(None, "--interval", help="data.interval", autocompletion=complete_interval),
    algo: str | None = typer.Option(None, "--algo", help="train.algo: ppo | a2c | sac (continuous) | dqn (discrete)"),
    timesteps: int | None = typer.Option(None, "--timesteps", help="train.timesteps (per walk-forward fold)"),
    n_envs: int | None = typer.Option(None, "--n-envs", help="train.n_envs (>1 uses SubprocVecEnv)"),
    seed: int | None = typer.Option(None, "--seed", help="train.seed"),
    folds: int | None = typer.Option(None, "--folds", help="train.folds (walk-forward, expanding window)"),
    tensorboard: bool = typer.Option(False, "--tensorboard", help="train.tensorboard: logs in the run folder"),
    resume: str | None = typer.Option(None, "--resume", help="Continue an interrupted train run or sweep (its run_id).",
                                      autocompletion=complete_train_run),
    sweep: Path | None = typer.Option(None, "--sweep", help="Search-space YAML: run a Ray Tune sweep of train runs "
                                      "(needs the [sweep] extra; see examples/sweeps/)."),
    trials: int | None = typer.Option(None, "--trials",
                                      help="sweep: number of trials (default: the space file's, or 4)"),
    max_concurrent: int | None = typer.Option(None, "--max-concurrent",
                                              help="sweep: trials at once (local Ray: its CPUs; default 1)"),
    ray_address: str | None = typer.Option(None, "--ray-address",
                                           help="sweep: join this Ray cluster (ray start --head)"),
    storage: str | None = typer.Option(None, "--storage",
                                       help="sweep: Ray Tune storage, a shared path or URI (default: the run folder)"),
    json_mode: bool = JSON_OPTION,
) -> None:
    app_ctx = app_context(ctx)
    sweep_flags = {"--trials": trials, "--max-concurrent": max_concurrent, "--ray-address": ray_address,
                   "--storage": storage}
    if sweep is not None or (resume is not None and _is_sweep(app_ctx, resume)):
        if probe:
            from coin_cli.errors import UsageError

            raise UsageError("--probe cannot be combined with --sweep")
        base = {"train__algo": (algo, "--algo"), "train__timesteps": (timesteps, "--timesteps"),
                "train__n_envs": (n_envs, "--n-envs"), "train__seed": (seed, "--seed"),
                "train__folds": (folds, "--folds"), "train__tensorboard": (tensorboard or None, "--tensorboard")}
        _sweep(app_ctx, sweep, resume, sweep_flags, symbol, interval, json_mode, base)
        return
    given_sweep = [flag for flag, value in sweep_flags.items() if value is not None]
    if given_sweep:
        from coin_cli.errors import UsageError

        raise UsageError(f"{', '.join(given_sweep)}: only with --sweep SPACE.yaml")
    training = {"--algo": algo, "--timesteps": timesteps, "--n-envs": n_envs, "--seed": seed, "--folds": folds,
                "--tensorboard": tensorboard or None, "--resume": resume}
    if probe:
        given = [flag for flag, value in training.items() if value is not None]
        if given:
            from coin_cli.errors import UsageError

            raise UsageError(f"--probe cannot be combined with {', '.join(given)} (training options)")
        _probe(app_ctx, symbol, interval, json_mode)
    else:
        _train(app_ctx, symbol, interval, training, json_mode)


def _train(app_ctx: Any, symbol: str | None, interval: str | None, training: dict[str, Any], json_mode: bool) -> None:
    """Exit 0 when training succeeded, promoted or not (the gate's verdict is in the table,
    the JSON and train_manifest.json); Ctrl-C -> checkpoint, exit 130, `--resume RUN_ID`."""
    from coin_cli import render
    from coin_cli.pipelines.evaluate import table_rows
    from coin_cli.pipelines.train_rl import prepare_settings, summary_rows, train

    settings = app_ctx.settings(
        data__symbol=(symbol, "--symbol"), data__interval=(interval, "--interval"),
        train__algo=(training["--algo"], "--algo"), train__timesteps=(training["--timesteps"], "--timesteps"),
        train__n_envs=(training["--n-envs"], "--n-envs"), train__seed=(training["--seed"], "--seed"),
        train__folds=(training["--folds"], "--folds"), train__tensorboard=(training["--tensorboard"], "--tensorboard"),
    )
    resume = training["--resume"]
    given = [flag for flag, value in training.items() if value is not None and flag != "--resume"]
    given += [flag for flag, value in (("--symbol", symbol), ("--interval", interval)) if value is not None]
    settings = prepare_settings(settings, resume, given)
    total = settings.train.timesteps * settings.train.folds
    with app_ctx.open_run(settings, "train", json_mode) as run, render.progress("train", total=total) as bar:
        summary = train(settings, run, progress=bar, resume=resume)
    columns, rows = table_rows(summary["evaluation"])
    tables = [render.kv_table("train", summary_rows(summary)), render.rows_table("evaluation", columns, rows)]
    render.emit(summary, json_mode=json_mode, tables=tables, run_id=run.run_id)


def _probe(app_ctx: Any, symbol: str | None, interval: str | None, json_mode: bool) -> None:
    from coin_cli import render
    from coin_cli.pipelines.train_probe import run_probe

    settings = app_ctx.settings(data__symbol=(symbol, "--symbol"), data__interval=(interval, "--interval"))
    with app_ctx.open_run(settings, "train", json_mode) as run, render.progress("train probe") as bar:
        summary = run_probe(settings, run, progress=bar)
    probe = summary["probe"]
    rows = {
        "status": summary["status"],
        "symbol / interval": f"{summary['symbol']} {summary['interval']}",
        "data": f"{summary['source']}{' (generated now)' if summary['bootstrap_generated'] else ''}, "
                f"{summary['rows']:,} candles",
        "splits (train / val / test)": " / ".join(str(summary["splits"].get(k, 0)) for k in ("train", "val", "test")),
        "feature parity (max diff / scale)": f"{summary['parity_max_scaled_diff']:.3g}"
                                             f"{' (bit-identical)' if summary['parity_bit_identical'] else ''}",
        "env check": summary["env_check"],
        "VolTarget steps": probe.get("steps", 0),
        "final equity": probe.get("final_equity"),
        "buy-and-hold final equity": probe.get("buyhold_final_equity"),
        "total reward": probe.get("total_reward"),
        "max drawdown": probe.get("max_drawdown"),
        "trades / fees": f"{probe.get('trades', 0)} / {render.fmt(probe.get('fees', 0.0))}",
        "feature hash": summary["feature_hash"][:16],
        "seconds": summary["duration_s"],
    }
    tables = [render.kv_table("train probe", rows)]
    if summary["reasons"]:
        tables.append(render.rows_table("blocked because", ["reason"], [[r] for r in summary["reasons"]]))
    render.emit(summary, json_mode=json_mode, tables=tables, run_id=run.run_id)
    if summary["status"] != "ready":
        raise typer.Exit(5)


def _is_sweep(app_ctx: Any, run_id: str) -> bool:
    from coin_cli.sweep.service import SWEEP_FILE

    runs_dir = app_ctx.settings().paths.runs_dir
    return "/" not in run_id and (Path(runs_dir) / run_id / SWEEP_FILE).is_file()


def _sweep(app_ctx: Any, space_file: Path | None, resume: str | None, flags: dict[str, Any], symbol: str | None,
           interval: str | None, json_mode: bool, base: dict[str, Any]) -> None:
    """Exit 0 when the sweep finished (the best trial promoted or not: the verdict is in the table,
    --json `status` and sweep.json); Ctrl-C keeps the finished trials, exit 130, --resume SWEEP_ID."""
    from coin_cli import render
    from coin_cli.sweep.service import SweepRequest, prepare, run_sweep, table_rows

    # training flags set the sweep's base settings; the space file's fixed and searched keys win over them
    settings = app_ctx.settings(data__symbol=(symbol, "--symbol"), data__interval=(interval, "--interval"), **base)
    request = SweepRequest(space_file, flags["--trials"], flags["--max-concurrent"], flags["--ray-address"],
                           flags["--storage"], resume)
    settings, space, request = prepare(settings, request)
    with app_ctx.open_run(settings, "train", json_mode) as run, _trial_progress(request.trials) as on_event:
        summary = run_sweep(settings, space, request, run, on_event=on_event)
    columns, rows = table_rows(summary["trials"])
    best = summary.get("best") or {}
    kv = {
        "status": summary["status"],
        "trials (tried / requested)": f"{summary['trials_tried']} / {summary['trials_requested']}",
        "ranked on": "validation Sharpe after costs (test unseen by the selection)",
        "best trial": f"{summary['best_trial']} ({summary['best_folder']})" if summary["best_trial"] else "-",
        "best: val Sharpe": best.get("val_sharpe"),
        "best: test Sharpe vs best baseline": (f"{best['test_sharpe']:.3f} vs {best['test_sharpe_best_baseline']:.3f} "
                                               f"({best['test_best_baseline']})") if best else "-",
        "ray": f"{summary['ray']['address']}, {request.max_concurrent} concurrent",
        "seconds": summary["duration_s"],
    }
    for i, reason in enumerate(summary["reasons"], 1):
        kv[f"not promoted ({i})"] = reason
    tables = [render.kv_table("sweep", kv), render.rows_table("trials (best validation Sharpe first)", columns, rows)]
    render.emit(summary, json_mode=json_mode, tables=tables, run_id=run.run_id)


@contextmanager
def _trial_progress(total: int) -> Any:
    """Trial events: a live table of the trials on a terminal (stderr), else one plain line per
    finished, stopped or failed trial."""
    from coin_cli import render

    console = render.err()
    trials: dict[str, dict[str, Any]] = {}

    def table() -> Any:
        rows = [[tid, e["status"], e.get("val_sharpe"),
                 ", ".join(f"{k}={render.fmt(v)}" for k, v in e["params"].items())] for tid, e in trials.items()]
        done = sum(e["status"] in ("finished", "stopped", "error") for e in trials.values())
        return render.rows_table(f"sweep: {done}/{total} trials done", ["trial", "status", "best val Sharpe",
                                                                         "params"], rows)

    if not console.is_terminal:
        def line(event: dict[str, Any]) -> None:
            before = trials.get(event["trial_id"], {}).get("status")
            trials[event["trial_id"]] = event
            if event["status"] in ("finished", "stopped", "error") and before != event["status"]:
                params = ", ".join(f"{k}={render.fmt(v)}" for k, v in event["params"].items())
                render.info(f"trial {event['trial_id']} {event['status']}: val Sharpe "
                            f"{render.fmt(event.get('val_sharpe'))} ({params})")

        yield line
        return
    from rich.live import Live

    with Live(table(), console=console, auto_refresh=False, transient=True) as live:
        def update(event: dict[str, Any]) -> None:
            trials[event["trial_id"]] = event
            live.update(table(), refresh=True)

        yield update
