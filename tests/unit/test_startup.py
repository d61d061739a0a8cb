"""The collector pause around start-up: paused inside, resumed (with start-up objects frozen) after."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from coin_cli.gcpause import collector_paused
from tests.conftest import clean_env


@pytest.fixture(autouse=True)
def _unfreeze() -> Iterator[None]:
    yield
    gc.unfreeze()  # hand the test process's objects back to the collector


def test_paused_inside_resumed_after_and_only_by_the_block_that_paused() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner block did not resume it
    assert gc.isenabled() and gc.get_freeze_count() > 0


def test_a_collector_switched_off_by_someone_else_stays_off() -> None:
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_resumed_even_when_the_block_raises() -> None:
    try:
        with collector_paused():
            raise KeyError("x")
    except KeyError:
        pass
    assert gc.isenabled()


def test_a_command_run_through_the_entry_point_collects_as_usual(tmp_path: Path) -> None:
    code = ("import atexit, gc, sys; from coin_cli.startup import main; "
            "atexit.register(lambda: print('enabled', gc.isenabled(), 'frozen', gc.get_freeze_count() > 0)); "
            "sys.argv = ['coin', 'data', 'ls', '--json']; main()")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=clean_env(), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "enabled True frozen True"
