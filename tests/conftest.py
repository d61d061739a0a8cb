"""Shared fixtures: an isolated working folder and environment, and ways to run the real `coin`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Real candle excerpts shipped with the repository (sources and licences: tests/data/README.md).
TEST_DATA = Path(__file__).resolve().parent / "data"

# pytest-xdist's workers run with SIGINT ignored, and an ignored signal stays ignored across exec:
# every `coin` a test started would then shrug off the Ctrl-C the test sends. A user's terminal
# delivers it, so the tests' children get Python's default handling back.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

_SCRUB_PREFIXES = ("COIN_", "BINANCE_", "TELEGRAM_")
_SCRUB = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "NO_COLOR")


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test process environment without coin settings, secrets or proxies."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIXES) and k not in _SCRUB}
    env["PYTHONUNBUFFERED"] = "1"
    env["PTB_TIMEDELTA"] = "1"
    env.update(extra or {})
    return env


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh working folder (no configs/default.yaml) with a scrubbed environment."""
    for key in list(os.environ):
        if key.startswith(_SCRUB_PREFIXES) or key in _SCRUB:
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PTB_TIMEDELTA", "1")
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def run_coin(
    args: list[str],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run the real `coin` command in a subprocess (python -m coin_cli, same interpreter)."""
    return subprocess.run(
        [sys.executable, "-m", "coin_cli", *args],
        cwd=cwd, env=clean_env(env), input=input, capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture
def coin(workdir: Path):
    """`coin(*args, env=None, input=None)` -> CompletedProcess, run in `workdir`."""

    def _run(*args: str, env: Mapping[str, str] | None = None, input: str | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run_coin(list(args), cwd=workdir, env=env, input=input, timeout=timeout)

    return _run


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""
