"""Root command: mounts the five groups, the global options, and the ONE place where
exceptions become exit codes (DESIGN.md §2)."""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from coin_cli import __version__
from coin_cli.commands import data, notify, report, stream, trade, train
from coin_cli.context import AppContext
from coin_cli.errors import CoinError, ExitCode, Terminated


class CoinGroup(TyperGroup):
    """Maps every exception raised below the root to one stderr line and its exit code."""

    ORDER = ("data", "train", "trade", "stream", "notify")  # the life of a strategy, in help

    def list_commands(self, ctx: typer.Context) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: self.ORDER.index(n) if n in self.ORDER else len(self.ORDER))

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except BrokenPipeError:  # the reader of stdout left (`| head`): not an error of the command
            _stdout_closed(ctx)
        except SystemExit as exc:
            if isinstance(exc.__context__, BrokenPipeError):  # rich's Console exits 1 on a closed pipe
                _stdout_closed(ctx)
            raise
        except typer.TyperException as exc:  # usage errors: one line too, not a box
            if not exc.format_message():  # a group called without a command: its help
                exc.show()
                raise typer.Exit(getattr(exc, "exit_code", ExitCode.USAGE)) from None
            sub = getattr(exc, "ctx", None) or ctx
            message = f"{sub.command_path}: {exc.format_message()} (see '{sub.command_path} --help')"
            _fail(ctx, message, getattr(exc, "exit_code", ExitCode.USAGE), exc)
        except CoinError as exc:
            _fail(ctx, str(exc), exc.exit_code, exc)
        except Terminated as exc:  # a service may say what it kept: Terminated("N candles kept, ...")
            _fail(ctx, _said("terminated (SIGTERM)", exc), ExitCode.TERMINATED, exc)
        except KeyboardInterrupt as exc:
            _fail(ctx, _said("interrupted", exc), ExitCode.INTERRUPTED, exc)
        except Exception as exc:  # an unexpected error is a bug: say so, hint at -v
            message = f"unexpected {type(exc).__name__}: {exc}"
            _fail(ctx, message, ExitCode.UNEXPECTED, exc, hint=True)


def _stdout_closed(ctx: typer.Context) -> None:
    """Quiet, and the exit code is the one meta.json records: stdout goes to /dev/null (so the
    interpreter's last flush cannot fail either) and a run cut short by the closed pipe is ok."""
    _stdout_to_devnull()
    run = ctx.obj.run if isinstance(ctx.obj, AppContext) else None
    if run is None:
        raise typer.Exit(0)
    # still running, or finished as `failed`/1 by rich's SystemExit(1) (a real error records its name)
    if run.meta.get("status") == "running" or ("error" not in run.meta and run.meta.get("exit_code") == 1):
        run.finish("ok", 0, stdout="closed by the reader")
    raise typer.Exit(int(run.meta.get("exit_code") or 0))


def _stdout_to_devnull() -> None:
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _said(what: str, exc: BaseException) -> str:
    return f"{what}: {exc}" if str(exc) else what


def _fail(ctx: typer.Context, message: str, code: int, exc: BaseException, hint: bool = False) -> None:
    from coin_cli.config import redact
    from coin_cli.render import error_line

    app_ctx = ctx.obj if isinstance(ctx.obj, AppContext) else AppContext()
    run = app_ctx.run
    if run is not None and run.meta.get("status") == "running":
        run.finish("interrupted" if code in (ExitCode.INTERRUPTED, ExitCode.TERMINATED) else "failed", code)
    if app_ctx.verbose:
        sys.stderr.write(redact("".join(traceback.format_exception(exc))))
    text = redact(message.splitlines()[0] if message else type(exc).__name__)
    if hint and not app_ctx.verbose:
        text += " (run with -v for the traceback)"
    error_line(text)
    if run is not None:
        try:
            if app_ctx.json_mode:
                sys.stdout.write(json.dumps({"run_id": run.run_id, "status": "failed", "exit_code": int(code),
                                             "error": text}) + "\n")
            else:
                sys.stdout.write(run.run_id + "\n")
            sys.stdout.flush()
        except BrokenPipeError:  # nobody reads stdout: the error line and the exit code still tell
            _stdout_to_devnull()
    raise typer.Exit(int(code))


app = typer.Typer(
    name="coin",
    cls=CoinGroup,
    help="Reinforcement-learning crypto trading on Binance Spot.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (values: commands/_options.py)
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"coin {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Path | None = typer.Option(None, "--config", help="YAML config (default: configs/default.yaml)."),
    runs_dir: Path | None = typer.Option(None, "--runs-dir", help="Where run folders go (paths.runs_dir)."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Candle store root (paths.data_dir)."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Tracebacks and debug logs on stderr."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Reinforcement-learning crypto trading on Binance Spot."""
    ctx.obj = AppContext(config_path=config, runs_dir=runs_dir, data_dir=data_dir, verbose=verbose)
    _setup_logging(verbose)


def _setup_logging(verbose: bool) -> None:
    import logging
    import time

    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%SZ")
    formatter.converter = time.gmtime  # ISO UTC: a log line read next to bar times and alerts
    handler.setFormatter(formatter)
    root_logger = logging.getLogger("coin")
    root_logger.handlers[:] = [handler]
    root_logger.setLevel(logging.DEBUG if verbose else logging.WARNING)
    # httpx logs full request URLs, and Telegram's contain the bot token.
    logging.getLogger("httpx").setLevel(logging.WARNING)


app.add_typer(data.app, name="data", help="Candles: download, import, bootstrap, validate, list.")
app.command("train", help="Train an agent, or --probe: the end-to-end readiness gate.")(train.train)
app.command("trade", help="Run the trading loop: replay, paper (default) or live.")(trade.trade)
app.add_typer(stream.app, name="stream", help="Binance user data stream and market klines.")
app.command("notify", help="Send a Telegram message (cron scripts, runtime alerts).")(notify.notify)
app.command("report", help="One self-contained HTML page of a run: figures, charts, settings.")(report.report)


def main() -> None:
    """Console-script entry point."""
    try:
        code = app(prog_name="coin", standalone_mode=False)
    except typer.TyperException as exc:  # a bad root option, before any command runs
        from coin_cli.render import error_line

        if exc.format_message():
            error_line(f"coin: {exc.format_message()} (see 'coin --help')")
        else:
            exc.show()
        code = getattr(exc, "exit_code", ExitCode.USAGE)
    except (KeyboardInterrupt, typer.Abort) as exc:  # before any command ran
        from coin_cli.render import error_line

        terminated = isinstance(exc, Terminated)
        error_line("terminated (SIGTERM)" if terminated else "interrupted")
        code = ExitCode.TERMINATED if terminated else ExitCode.INTERRUPTED
    except (BrokenPipeError, SystemExit) as exc:  # stdout closed before a command ran (`coin --help | head -1`)
        if isinstance(exc, SystemExit) and not isinstance(exc.__context__, BrokenPipeError):
            raise
        _stdout_to_devnull()
        code = ExitCode.OK
    sys.exit(int(code) if isinstance(code, int) else 0)
