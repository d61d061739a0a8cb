"""`coin report RUN_ID`: one self-contained HTML page of a trade, train, probe or sweep run."""

from __future__ import annotations

from pathlib import Path

import typer

from coin_cli.commands._options import JSON_OPTION, app_context, complete_run_id


def report(
    ctx: typer.Context,
    run_id: str = typer.Argument(..., help="The run to report on (a folder under the runs directory).",
                                autocompletion=complete_run_id),
    out: Path | None = typer.Option(
        None, "--out", help="Write the page here (default: report.html in this command's run folder)."),
    open_page: bool = typer.Option(False, "--open", help="Open the page in a browser when there is a display."),
    json_mode: bool = JSON_OPTION,
) -> None:
    """Write one HTML page (charts and styles inline, no network) of a run; print its path, then the run_id."""
    from coin_cli import render
    from coin_cli.report.service import build_report, open_in_browser

    app_ctx = app_context(ctx)
    settings = app_ctx.settings()
    with app_ctx.open_run(settings, "report", json_mode) as run:
        result = build_report(settings.paths.runs_dir, run_id, out or run.path("report.html"))
        run.write_json("report.json", result)
    if open_page:
        result["opened"] = open_in_browser(Path(result["report"]))
    if not json_mode:
        render.out().print(result["report"], soft_wrap=True, markup=False, highlight=False)
    render.emit(result, json_mode=json_mode, tables=[], run_id=run.run_id)
