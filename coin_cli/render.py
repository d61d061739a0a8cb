"""All terminal output: rich tables and key/value panels on stdout, progress and messages on
stderr, and the `--json` twin. Nothing else in coin builds tables."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.table import Table


def _console(stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    no_color = bool(os.environ.get("NO_COLOR")) or not stream.isatty()
    tty = stream.isatty()
    # Piped output is read by scripts: never colour, and wide enough that tables do not fold.
    # Text is printed as it is: paths, symbols and error texts may hold "[/]" or ":x:", which rich
    # markup and emoji codes would restyle, replace, or fail on (MarkupError) after the work is done.
    return Console(file=stream, no_color=no_color, highlight=False, markup=False, emoji=False,
                   soft_wrap=False, force_terminal=None if tty else False, width=None if tty else 160)


def out() -> Console:
    return _console(stderr=False)


def err() -> Console:
    return _console(stderr=True)


def fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:
            return "nan"
        if abs(value) >= 1e6 or (0 < abs(value) < 1e-3):
            return f"{value:.4g}"
        return f"{value:,.4f}".rstrip("0").rstrip(".") if value % 1 else f"{value:,.0f}"
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ", ".join(fmt(v) for v in value)
    return str(value)


def kv_table(title: str, rows: Mapping[str, Any]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("key", style="bold")
    table.add_column("value")
    for key, value in rows.items():
        table.add_row(key, fmt(value))
    return table


def rows_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*(fmt(v) for v in row))
    return table


def emit(
    summary: Mapping[str, Any],
    *,
    json_mode: bool,
    tables: Sequence[Table] = (),
    run_id: str | None = None,
) -> None:
    """Print the result: one JSON object, or the tables then the run_id as the last line."""
    if json_mode:
        payload = dict(summary)
        if run_id is not None:
            payload.setdefault("run_id", run_id)
        sys.stdout.write(json.dumps(payload, default=str) + "\n")
        sys.stdout.flush()
        return
    console = out()
    for table in tables:
        console.print(table)
    if run_id is not None:
        sys.stdout.flush()
        console.print(run_id, markup=False, highlight=False, soft_wrap=True)


def error_line(message: str) -> None:
    err().print(f"error: {message}", markup=False, highlight=False, style="red", soft_wrap=True)


def warn(message: str) -> None:
    err().print(f"warning: {message}", markup=False, highlight=False, style="yellow", soft_wrap=True)


def info(message: str) -> None:
    err().print(message, markup=False, highlight=False, soft_wrap=True)


class ProgressReporter:
    """A callable `(done, total, text)` that drives a rich progress bar on stderr."""

    def __init__(self, progress: Any, task: Any):
        self._progress, self._task = progress, task

    def __call__(self, done: int, total: int | None = None, text: str | None = None) -> None:
        kwargs: dict[str, Any] = {"completed": done}
        if total is not None:
            kwargs["total"] = total
        if text is not None:
            kwargs["description"] = text
        self._progress.update(self._task, **kwargs)


@contextmanager
def progress(description: str, total: int | None = None) -> Iterator[ProgressReporter]:
    """A progress bar on stderr; silent (no bar) when stderr is not a terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = err()
    bar = Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=console, transient=True,
                   disable=not console.is_terminal)
    with bar:
        task = bar.add_task(description, total=total)
        yield ProgressReporter(bar, task)


@contextmanager
def _event_stream(json_mode: bool, title: str, columns: list[str],
                  to_row: Callable[[Mapping[str, Any]], list[Any] | str], keep: int) -> Iterator[Any]:
    """A callback for streamed events: JSON lines with --json; otherwise a live table of the last
    `keep` rows on stdout. `to_row` gives an event's row, or a text for a status line on stderr."""
    if json_mode:
        def write(event: Mapping[str, Any]) -> None:
            sys.stdout.write(json.dumps(event, default=str) + "\n")
            sys.stdout.flush()

        yield write
        return
    from rich.live import Live

    rows: list[list[Any]] = []
    console = out()

    def table() -> Table:
        return rows_table(title, columns, rows[-keep:])

    def show(event: Mapping[str, Any]) -> None:
        row = to_row(event)
        if isinstance(row, str):
            info(row)
            return
        rows.append(row)
        if live is not None:
            live.update(table(), refresh=True)

    if not console.is_terminal:  # piped: the table once, at the end (not on a failure)
        live = None
        yield show
        console.print(table())
        return
    with Live(table(), console=console, auto_refresh=False, transient=False) as live:
        yield show


def _kline_row(event: Mapping[str, Any]) -> list[Any] | str:
    if event.get("event") != "kline":
        return f"{event.get('event')}: {event.get('detail', '')}"
    return [event["time"], event["open"], event["high"], event["low"], event["close"], event["volume"],
            "gap-filled" if event.get("gap_filled") else ""]


def kline_stream(json_mode: bool, keep: int = 30) -> Any:
    """`coin stream market`: closed klines (gap-filled ones marked); stream down/up lines on stderr."""
    return _event_stream(json_mode, "closed klines", ["time", "open", "high", "low", "close", "volume", "note"],
                         _kline_row, keep)


def _user_event_detail(payload: Mapping[str, Any]) -> str:
    """One short line per user-stream event for the live table."""
    e = payload.get("e")
    if e == "executionReport":
        return (f"{payload.get('s')} {payload.get('S')} {payload.get('o')} {payload.get('x')}/{payload.get('X')} "
                f"order {payload.get('i')} filled {payload.get('z')} of {payload.get('q')}")
    if e == "outboundAccountPosition":
        return " ".join(f"{b.get('a')} {b.get('f')} (+{b.get('l')} locked)" for b in payload.get("B") or [])
    if e in ("balanceUpdate", "externalLockUpdate"):
        return f"{payload.get('a')} {payload.get('d')}"
    if e == "listStatus":
        return f"{payload.get('s')} list {payload.get('g')} {payload.get('l')}/{payload.get('L')}"
    return ", ".join(f"{k}={v}" for k, v in payload.items() if k not in ("e", "E"))[:80]


def _user_row(event: Mapping[str, Any]) -> list[Any] | str:
    from coin_cli.data.schema import ms_to_iso

    payload = event.get("payload") or {}
    if "e" not in payload:
        return f"{event.get('event_type')}: {payload.get('detail') or payload.get('reason', '')}"
    when = ms_to_iso(int(payload["E"])) if isinstance(payload.get("E"), int) else ""
    return [when, event["event_type"], payload["e"], _user_event_detail(payload)]


def user_stream(json_mode: bool, keep: int = 30) -> Any:
    """`coin stream user`: classified events; stream down/up/resync lines on stderr."""
    return _event_stream(json_mode, "user data stream", ["time", "type", "event", "detail"], _user_row, keep)
