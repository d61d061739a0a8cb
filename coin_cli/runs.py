"""Run folders: `runs/<UTC stamp>-<command>-<6 hex>/` with config.yaml, meta.json and the
command's own files; and the file lock for commands that must not overlap."""

from __future__ import annotations

import fcntl
import os
import platform
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from coin_cli import __version__
from coin_cli.config import Settings, dump_settings, redact
from coin_cli.errors import CoinError, ExitCode, LockHeldError, Terminated
from coin_cli.fsio import atomic_write_json, atomic_write_text

_CHECKOUT = Path(__file__).resolve().parent.parent
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
KEY_PACKAGES = (
    "typer", "rich", "pydantic", "numpy", "pandas", "pyarrow", "gymnasium",
    "stable-baselines3", "torch", "python-binance", "python-telegram-bot",
)


def utc_now() -> datetime:
    return datetime.now(UTC)


def utc_iso(moment: datetime | None = None) -> str:
    return (moment or utc_now()).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_run_id(command: str, moment: datetime | None = None) -> str:
    stamp = (moment or utc_now()).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{command}-{os.urandom(3).hex()}"


class Run:
    """One command's run folder. Use as a context manager: meta.json is finalised on exit,
    with status `failed` and the exit code when the body raises."""

    def __init__(self, runs_dir: Path, command: str, settings: Settings, argv: list[str] | None = None):
        self.command = command
        self.settings = settings
        # A secret pasted on the command line (e.g. into a message) must not reach meta.json.
        self.argv = [redact(arg) for arg in (sys.argv if argv is None else argv)]
        self.status = "ok"
        self.exit_code = int(ExitCode.OK)
        self.started = utc_now()
        self.dir = self._create(Path(runs_dir), command)
        self.run_id = self.dir.name
        self.meta: dict[str, Any] = {
            "run_id": self.run_id,
            "command": command,
            "argv": self.argv,
            "coin_version": __version__,
            "python": platform.python_version(),
            "packages": _package_versions(),
            "git_sha": git_sha(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": utc_iso(self.started),
            "ended": None,
            "status": "running",
            "exit_code": None,
        }
        atomic_write_text(self.dir / "config.yaml", _yaml_text(dump_settings(settings)))
        atomic_write_json(self.dir / "meta.json", self.meta)

    @staticmethod
    def _create(runs_dir: Path, command: str) -> Path:
        runs_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(20):
            candidate = runs_dir / new_run_id(command)
            try:
                candidate.mkdir()
            except FileExistsError:
                continue
            return candidate
        raise CoinError(f"{runs_dir}: could not create a unique run folder")

    def path(self, *parts: str) -> Path:
        target = self.dir.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def write_json(self, name: str, obj: Any) -> Path:
        target = self.path(name)
        atomic_write_json(target, obj)
        return target

    def set_outcome(self, status: str, exit_code: int = 0) -> None:
        """Record a non-default outcome (e.g. `blocked`, 5) for a body that returns normally."""
        self.status, self.exit_code = status, int(exit_code)

    def finish(self, status: str | None = None, exit_code: int | None = None, **extra: Any) -> None:
        self.meta.update(extra)
        self.meta["status"] = status or self.status
        self.meta["exit_code"] = self.exit_code if exit_code is None else int(exit_code)
        self.meta["ended"] = utc_iso()
        self.meta["duration_s"] = round((utc_now() - self.started).total_seconds(), 3)
        atomic_write_json(self.dir / "meta.json", self.meta)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self.finish()
        elif isinstance(exc, KeyboardInterrupt):
            self.finish("interrupted", ExitCode.TERMINATED if isinstance(exc, Terminated) else ExitCode.INTERRUPTED)
        elif isinstance(exc, CoinError):
            self.finish("failed", exc.exit_code, error=type(exc).__name__)
        elif isinstance(exc, SystemExit):
            code = exc.code if isinstance(exc.code, int) else 1
            self.finish("ok" if code == 0 else "failed", code)
        else:
            self.finish("failed", ExitCode.UNEXPECTED, error=type(exc).__name__)


def _yaml_text(data: dict[str, Any]) -> str:
    """Block-style YAML, keys in the settings' order (libyaml's C dumper where installed)."""
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(data, Dumper=dumper, sort_keys=False, allow_unicode=True, default_flow_style=False)


def _package_versions() -> dict[str, str | None]:
    """Installed versions of KEY_PACKAGES through importlib.metadata. One version() per name
    (~12 ms for the eleven) is cheaper than one pass over distributions(), which reads every
    installed package's METADATA (~45 ms here)."""
    from importlib import metadata

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {name: version(name) for name in KEY_PACKAGES}


def git_sha(checkout: Path = _CHECKOUT) -> str | None:
    """HEAD's commit of the checkout coin runs from; None when git is absent or this is no git
    checkout (installed from a wheel)."""
    try:
        result = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--verify", "-q", "HEAD"],
                                capture_output=True, text=True, timeout=5, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    sha = result.stdout.strip()
    return sha if result.returncode == 0 and _SHA.fullmatch(sha) else None


@contextmanager
def file_lock(runs_dir: Path, name: str, what: str | None = None) -> Iterator[Path]:
    """Hold an exclusive, non-blocking lock `runs_dir/.locks/<name>.lock` for the block.

    Raises LockHeldError (exit 5) naming the holder when another process has it. The kernel
    drops the lock when the holder dies, so a crashed run never leaves a stale lock.
    """
    lock_dir = Path(runs_dir) / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    path = lock_dir / f"{name}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise LockHeldError(
                f"{path}: another run holds this lock ({holder}), so this {what or name} cannot start; "
                "wait for it to finish or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        since = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
        os.pwrite(fd, f"{what or name}, pid {os.getpid()} since {since}".encode(), 0)   # the holder, for others
        yield path
    finally:
        os.close(fd)
