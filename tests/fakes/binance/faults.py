"""Faults of the market streams: methods of `fake.streams` and POST /_control/<action> for the
process mode (the table is in README.md): drop (abort, or a close frame), stall / unstall,
duplicate_next, reorder_next, server_shutdown. `path` (optional) limits a fault to connections
whose path contains that text. A fault on open sockets acts within streams.TICK_S (50 ms); the
duplicate/reorder counters act on the next closed kline of any socket.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from typing import Any

from tests.fakes.binance.server import CONTROL_ACTIONS, FakeBinance, dumps


class StreamFaults:
    connections: list[Any]
    fake: FakeBinance

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters = {"duplicate": 0, "reorder": 0}

    def duplicate_next(self, n: int = 1) -> None:
        with self._lock:
            self._counters["duplicate"] += n

    def reorder_next(self, n: int = 1) -> None:
        with self._lock:
            self._counters["reorder"] += n

    def _take(self, kind: str) -> bool:
        with self._lock:
            if self._counters[kind] <= 0:
                return False
            self._counters[kind] -= 1
            return True

    def _matching(self, path: str | None) -> list[Any]:
        return [c for c in list(self.connections) if path is None or path in c.path]

    def drop(self, mode: str = "abort", code: int = 1000, path: str | None = None) -> int:
        """Drop the open sockets; returns how many."""
        if mode not in ("abort", "close"):
            raise ValueError("mode is 'abort' or 'close'")
        conns = self._matching(path)
        for conn in conns:
            conn.actions.append((mode, code))
        return len(conns)

    def stall(self, seconds: float | None = None, path: str | None = None) -> int:
        until = math.inf if seconds is None else time.monotonic() + seconds
        conns = self._matching(path)
        for conn in conns:
            conn.stalled_until = until
        return len(conns)

    def unstall(self) -> None:
        for conn in list(self.connections):
            if conn.stalled_until is not None:
                conn.stalled_until = 0.0

    def server_shutdown(self, path: str | None = None) -> int:
        conns = self._matching(path)
        for conn in conns:
            conn.actions.append(("shutdown", None))
        return len(conns)

    async def _run_actions(self, conn: Any) -> bool:
        """Carry out the faults queued on `conn`; True when the connection is gone."""
        while conn.actions:
            kind, arg = conn.actions.pop(0)
            if kind == "abort":
                transport = conn.request.transport
                if transport is not None:
                    transport.abort()
                return True
            if kind == "close":
                with contextlib.suppress(Exception):
                    await conn.ws.close(code=arg, message=b"fake Binance: closed by a test")
                return True
            if kind == "shutdown":
                event = {"e": "serverShutdown", "E": self.fake.server_time_ms()}
                await conn.ws.send_str(dumps({"stream": "!serverShutdown", "data": event} if conn.combined else event))
        return False

    def stats(self) -> dict[str, Any]:
        return {"connects": getattr(self, "connects", 0),
                "open": [{"id": c.id, "path": c.path, "stalled": c.stalled_until is not None}
                         for c in list(self.connections)],
                "sent": len(getattr(self, "sent", []))}


def _streams(fake: FakeBinance) -> Any:
    return fake.streams


CONTROL_ACTIONS.update({
    "drop": lambda fake, b: _streams(fake).drop(b.get("mode", "abort"), int(b.get("code", 1000)), b.get("path")),
    "stall": lambda fake, b: _streams(fake).stall(b.get("seconds"), b.get("path")),
    "unstall": lambda fake, b: _streams(fake).unstall(),
    "duplicate": lambda fake, b: _streams(fake).duplicate_next(int(b.get("n", 1))),
    "reorder": lambda fake, b: _streams(fake).reorder_next(int(b.get("n", 1))),
    "shutdown": lambda fake, b: _streams(fake).server_shutdown(b.get("path")),
    "streams": lambda fake, b: _streams(fake).stats(),
    "stream_log": lambda fake, b: list(_streams(fake).sent),
})
