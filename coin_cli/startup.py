"""Process start-up: the `coin` entry point, SIGTERM, and the collector pause while the CLI imports.

SIGTERM (cron's `timeout`, systemd) raises `Terminated`, a KeyboardInterrupt: it unwinds like
Ctrl-C, so what a command has done is kept and its run finalised (exit 143).

The cyclic garbage collector is paused while the CLI imports (coin_cli/gcpause.py says why);
every command but `coin notify` collects as usual once the CLI is imported.

This is the entry point: nothing in coin_cli imports it (or coin_cli.app) but `python -m coin_cli`.
"""

from __future__ import annotations

import signal

from coin_cli.gcpause import collector_paused


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
