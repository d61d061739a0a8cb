"""Options shared by several commands."""

from __future__ import annotations

import typer

from coin_cli.context import AppContext

JSON_OPTION = typer.Option(False, "--json", help="Print one JSON object instead of tables.")


def app_context(ctx: typer.Context) -> AppContext:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, AppContext) else AppContext()
