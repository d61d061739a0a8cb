"""`coin notify`: Telegram messages from cron scripts (and the same path as the runtime's alerts)."""

from __future__ import annotations

import sys
from enum import StrEnum

import typer

from coin_cli.commands._options import JSON_OPTION, app_context


class ParseMode(StrEnum):
    html = "html"
    none = "none"


def notify(
    ctx: typer.Context,
    text: str | None = typer.Argument(None, help="Message text (or --stdin)."),
    code: str | None = typer.Option(None, "--code", help="Alert code: the unified format (code, host, UTC time)."),
    silent: bool = typer.Option(False, "--silent", help="Deliver without a notification sound."),
    stdin: bool = typer.Option(False, "--stdin", help="Read the message text from standard input."),
    parse_mode: ParseMode | None = typer.Option(None, "--parse-mode", help="html or none (telegram.parse_mode)."),
    flush: bool = typer.Option(False, "--flush", help="Send everything waiting in the outbox, collapsed repeats too."),
    json_mode: bool = JSON_OPTION,
) -> None:
    """Send a Telegram message; undelivered messages stay in the outbox (exit 4) and go out first next time."""
    from coin_cli.gcpause import collector_paused

    # A short-lived process: a send leaves ~40 cyclic objects for the collector (1.5 MB over 200
    # messages), so it runs with the collector paused (coin_cli/gcpause.py).
    with collector_paused():
        _notify(ctx, text, code, silent, stdin, parse_mode, flush, json_mode)


def _notify(ctx: typer.Context, text: str | None, code: str | None, silent: bool, stdin: bool,
            parse_mode: ParseMode | None, flush: bool, json_mode: bool) -> None:
    from coin_cli.errors import UsageError

    app_ctx = app_context(ctx)
    if stdin:
        if text is not None:
            raise UsageError("give the message either as an argument or with --stdin, not both")
        text = sys.stdin.buffer.read().decode("utf-8", errors="replace")
    settings = app_ctx.settings(telegram__parse_mode=(parse_mode.value if parse_mode else None, "--parse-mode"))
    from coin_cli import render
    from coin_cli.monitoring.notify_service import send_notification

    with app_ctx.open_run(settings, "notify", json_mode) as run:
        result = send_notification(settings, run, text=text, code=code, silent=silent, flush=flush)
    if result["possible_duplicates"]:
        render.warn(f"Telegram did not answer in time {result['possible_duplicates']}x; the message was sent "
                    "again and may arrive twice")
    rows = {key: value for key, value in result.items() if key != "telegram_message_ids"}
    render.emit(result, json_mode=json_mode, tables=[render.kv_table("notify", rows)], run_id=run.run_id)
