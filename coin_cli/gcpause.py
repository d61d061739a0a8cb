"""Pausing CPython's cyclic garbage collector for a short-lived stretch of work.

Importing Typer, pydantic, rich or python-telegram-bot creates a few hundred thousand objects
(classes, functions, module dicts) that live as long as the process and are never garbage;
CPython's cyclic collector scanned them over and over while they loaded: 149 collections, ~90 ms
of a `coin notify`. So the entry point pauses the collector while the CLI imports, and `coin
notify` for the whole command (its sends leave ~40 cyclic objects per message behind). When a
pause ends, what exists is frozen out of later collections (`gc.freeze`): otherwise the first
collection after it scans everything the imports made.

A module of its own, importing nothing of coin's: the entry point and commands both use it, and
a command never imports the entry point.
"""

from __future__ import annotations

import gc
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
