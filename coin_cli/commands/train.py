"""`coin train` and `coin train --probe`."""

from __future__ import annotations

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
    resume: str | None = typer.Option(None, "--resume", help="Continue an interrupted train run (its run_id).",
                                      autocompletion=complete_train_run),
    json_mode: bool = JSON_OPTION,
) -> None:
    app_ctx = app_context(ctx)
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
