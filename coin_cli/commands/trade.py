"""`coin trade`: the event-driven trading runtime."""

from __future__ import annotations

import typer

from coin_cli.commands._options import JSON_OPTION, app_context


def trade(
    ctx: typer.Context,
    symbol: str | None = typer.Option(None, "--symbol", help="data.symbol"),
    json_mode: bool = JSON_OPTION,
) -> None:
    app_context(ctx)
    raise typer.Exit(0)
