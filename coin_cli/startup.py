"""Process start-up: the `coin` entry point, SIGTERM, and pausing the cyclic garbage collector.

SIGTERM (cron's `timeout`, systemd) raises `Terminated`, a KeyboardInterrupt: it unwinds like
Ctrl-C, so what a command has done is kept and its run finalised (exit 143).

Importing Typer, pydantic, rich or python-telegram-bot creates a few hundred thousand objects
(classes, functions, module dicts) that live as long as the process and are never garbage;
CPython's cyclic collector scanned them over and over while they loaded: 149 collections, ~90 ms
of a `coin notify`. So the collector is paused while the CLI imports, and for the whole of a
short-lived command (`coin notify`, whose sends leave ~40 cyclic objects per message behind).
When a pause ends, what exists is frozen out of later collections (`gc.freeze`): otherwise the
first collection after it scans everything the imports made. Every other command collects as
usual once the CLI is imported.
"""

from __future__ import annotations

import gc
import signal
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the block, then freeze the objects that exist and
    resume; nested blocks (or another thread's) leave that to the block that paused it."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def main() -> None:
    """The `coin` console script (and `python -m coin_cli`)."""
    signal.signal(signal.SIGTERM, _terminate)
    with collector_paused():
        from coin_cli.app import main as run_app
    run_app()


def _terminate(signum: int, frame: object) -> None:
    # Python's default for SIGTERM is to die on the spot: no run finalised, nothing kept.
    from coin_cli.errors import Terminated

    raise Terminated
