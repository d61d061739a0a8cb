"""One exception tree; each class carries its exit code (DESIGN.md §2).

    CoinError (1)
    ├── UsageError (2)          bad flags or flag combinations
    │   └── ConfigError (2)     bad config file, key, value or missing secret
    ├── DataError (3)           invalid or missing data, corrupt state file
    ├── ExchangeError (4)       exchange / network unavailable after retries
    │   └── NotifyError (4)     a message kept in the outbox, not delivered
    └── BlockedError (5)        a gate, a risk halt or a held lock

`coin_cli.app` is the one place that turns these into exit codes.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    UNEXPECTED = 1
    USAGE = 2
    DATA = 3
    EXCHANGE = 4
    BLOCKED = 5
    INTERRUPTED = 130
    TERMINATED = 143  # 128 + SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM (cron's `timeout`, systemd, docker stop) unwinds like Ctrl-C, so every command keeps
    what it has (downloaded pages, a training checkpoint) and its run is finalised; exit 143."""


class CoinError(Exception):
    """An expected failure: printed as one `error: ...` line, never a traceback."""

    exit_code: ExitCode = ExitCode.UNEXPECTED


class UsageError(CoinError):
    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    exit_code = ExitCode.USAGE


class DataError(CoinError):
    exit_code = ExitCode.DATA


class ExchangeError(CoinError):
    exit_code = ExitCode.EXCHANGE


class NotifyError(ExchangeError):
    exit_code = ExitCode.EXCHANGE


class BlockedError(CoinError):
    exit_code = ExitCode.BLOCKED


class LockHeldError(BlockedError):
    exit_code = ExitCode.BLOCKED
