"""`coin train` and `coin train --probe`."""

from __future__ import annotations

from typing import Any

import typer

from coin_cli.commands._options import JSON_OPTION, app_context


def train(
    ctx: typer.Context,
    probe: bool = typer.Option(False, "--probe", help="Run the end-to-end readiness gate instead of training."),
    symbol: str | None = typer.Option(None, "--symbol", help="data.symbol"),
    interval: str | None = typer.Option(None, "--interval", help="data.interval"),
    json_mode: bool = JSON_OPTION,
) -> None:
    app_ctx = app_context(ctx)
    if probe:
        _probe(app_ctx, symbol, interval, json_mode)
    else:
        from coin_cli.errors import UsageError

        raise UsageError("training arrives with issue 5; `coin train --probe` runs the readiness gate")


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
