"""`coin train` and `coin train --probe`."""

from __future__ import annotations

import typer

from coin_cli.commands._options import JSON_OPTION, app_context


def train(
    ctx: typer.Context,
    probe: bool = typer.Option(False, "--probe", help="Run the end-to-end readiness gate instead of training."),
    symbol: str | None = typer.Option(None, "--symbol", help="data.symbol"),
    interval: str | None = typer.Option(None, "--interval", help="data.interval"),
    json_mode: bool = JSON_OPTION,
) -> None:
    app_context(ctx)
    raise typer.Exit(0)
