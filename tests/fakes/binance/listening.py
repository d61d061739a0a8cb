"""Listening control of the fake: the listening socket can be closed (the market unreachable:
connection refused) and re-opened on the same port; `_call_in_loop` runs a fault on the fake's loop
from any thread. Mixed into FakeBinance."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from aiohttp import web


class Listening:
    host: str
    port: int
    _runner: web.AppRunner | None
    _loop: asyncio.AbstractEventLoop | None
    _sites: list[web.TCPSite]
    _refusing: bool

    async def _listen(self, port: int) -> None:
        assert self._runner is not None
        site = web.TCPSite(self._runner, self.host, port, reuse_address=True)
        await site.start()
        server = getattr(site, "_server", None)
        assert server is not None and server.sockets
        self.port = server.sockets[0].getsockname()[1]
        self._sites.append(site)

    # ---- market unreachable ---------------------------------------------------------------------
    def refuse_connections(self, seconds: float | None = None) -> None:
        """Stop listening (new connections are refused; open ones stay) for `seconds`, or until
        `accept_connections()`. Takes effect before this returns. Over HTTP: POST /_control/refuse
        {"seconds": S} (give S: the control endpoint is on the same port)."""
        self._call_in_loop(lambda: self._refuse(seconds))

    def accept_connections(self) -> None:
        """Listen again on the same port (from the fake's own loop: on its next turn)."""
        self._call_in_loop(lambda: asyncio.ensure_future(self._accept()))

    def _refuse(self, seconds: float | None) -> None:
        if self._refusing:
            return
        self._refusing = True
        for site in self._sites:
            server = getattr(site, "_server", None)
            if server is not None:
                server.close()  # closes the listening socket at once; accepted connections stay
        self._sites.clear()
        if seconds is not None:
            asyncio.get_running_loop().call_later(float(seconds), lambda: asyncio.ensure_future(self._accept()))

    async def _accept(self) -> None:
        if self._refusing and self._runner is not None:
            self._refusing = False
            await self._listen(self.port)

    async def _set_refusing(self, refuse: bool, seconds: float | None = None) -> None:
        if refuse:
            self._refuse(seconds)
        else:
            await self._accept()

    def _call_in_loop(self, fn: Callable[[], Any]) -> None:
        """Call `fn` on the fake's loop: directly if we are on it, else from this thread and wait."""
        assert self._loop is not None, "fake Binance is not started"
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            fn()
            return
        done = threading.Event()

        def call() -> None:
            try:
                fn()
            finally:
                done.set()

        self._loop.call_soon_threadsafe(call)
        done.wait(10)

