"""A loopback fake of the Telegram Bot API (aiohttp on 127.0.0.1, random port).

It speaks the real wire protocol as python-telegram-bot 22 uses it: `POST /bot<token>/<method>`
with form-encoded (or JSON) parameters, answers `{"ok": true, "result": ...}` or the official
error shape `{"ok": false, "error_code": N, "description": "...", "parameters": {...}}`.

Three ways to run it:
- `await FakeBotAPI(...).start()` inside the caller's event loop;
- `FakeBotAPI(...).start_in_thread()` (own loop in a daemon thread) when the code under test
  runs `asyncio.run` itself, or is a subprocess (`coin notify`) reaching it over loopback;
- standalone: `python -m tests.fakes.telegram_api --token T --chat 42` prints `BASE_URL=...` and
  `CONTROL_URL=...`; drive it over HTTP (`POST /_control/fail`, `GET /_control/messages`, ...).
  `FakeBotAPIProcess` wraps that for tests and benchmarks.

Failure injection: `fail_next(kind, method="sendMessage", times=1, **opts)` with kind
`429` (retry_after), `401`, `400` (description), `403` (description), `migrate` (new_chat_id),
`502` (JSON body), `502html` (nginx HTML body), `slow` (delay; the message IS recorded first,
as a real server that got the request would), `drop` (close the connection without answering).
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterable
from typing import Any

from aiohttp import web

MAX_TEXT = 4096
_ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a", "code",
                 "pre", "blockquote", "tg-emoji"}
_ENTITY = re.compile(r"&(lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")
_TAG = re.compile(r"</?([a-zA-Z][a-zA-Z0-9-]*)(\s[^<>]*)?>")


def _error(code: int, description: str, **parameters: Any) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=code)


def html_text_length(text: str) -> int | str:
    """Length after entity parsing, or an error description like the real server's."""
    pos, visible = 0, []
    while pos < len(text):
        ch = text[pos]
        if ch == "<":
            m = _TAG.match(text, pos)
            if not m or m.group(1).lower() not in _ALLOWED_TAGS:
                return f"Bad Request: can't parse entities: unsupported start tag at byte offset {pos}"
            pos = m.end()
            continue
        if ch == "&":
            m = _ENTITY.match(text, pos)
            if not m:
                return f"Bad Request: can't parse entities: character '&' is reserved at offset {pos}"
            visible.append(html.unescape(m.group(0)))
            pos = m.end()
            continue
        if ch == ">":
            return f"Bad Request: can't parse entities: character '>' is reserved at offset {pos}"
        visible.append(ch)
        pos += 1
    return len("".join(visible))


class FakeBotAPI:
    def __init__(self, tokens: Iterable[str] | None = ("123456:TEST-TOKEN",),
                 known_chats: Iterable[str | int] | None = ("42",), host: str = "127.0.0.1"):
        self.tokens = set(tokens) if tokens is not None else None
        self.known_chats = {str(c) for c in known_chats} if known_chats is not None else None
        self.host = host
        self.port = 0
        self.messages: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self._failures: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ---- state ---------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/bot"

    @property
    def control_url(self) -> str:
        return f"http://{self.host}:{self.port}/_control"

    def fail_next(self, kind: str, method: str = "sendMessage", times: int = 1, **opts: Any) -> None:
        with self._lock:
            self._failures.append({"kind": str(kind), "method": method, "times": int(times), **opts})

    def reset(self) -> None:
        with self._lock:
            self.messages.clear()
            self.requests.clear()
            self._failures.clear()

    def _take_failure(self, method: str) -> dict[str, Any] | None:
        with self._lock:
            for failure in self._failures:
                if failure["method"] in (method, "*"):
                    failure["times"] -= 1
                    if failure["times"] <= 0:
                        self._failures.remove(failure)
                    return dict(failure)
        return None

    # ---- HTTP ----------------------------------------------------------------------------------
    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_post("/_control/fail", self._control_fail)
        app.router.add_post("/_control/reset", self._control_reset)
        app.router.add_get("/_control/messages", self._control_messages)
        app.router.add_get("/_control/requests", self._control_requests)
        app.router.add_get("/_control/health", self._control_health)
        return app

    async def _control_messages(self, request: web.Request) -> web.Response:
        with self._lock:
            return web.json_response(list(self.messages))

    async def _control_requests(self, request: web.Request) -> web.Response:
        with self._lock:
            return web.json_response(list(self.requests))

    async def _control_health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def _control_fail(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.fail_next(**body)
        return web.json_response({"ok": True})

    async def _control_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                params.update(await request.json())
            else:
                params.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
        return params

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        token, method = request.match_info["token"], request.match_info["method"]
        params = await self._params(request)
        at = time.time()
        with self._lock:
            self.requests.append({"method": method, "params": params, "at": at,
                                  "token_ok": self.tokens is None or token in self.tokens})
        if self.tokens is not None and token not in self.tokens:
            return _error(401, "Unauthorized")
        failure = self._take_failure(method)
        if failure is not None and failure["kind"] != "slow":
            return await self._fail(request, failure)
        if method == "getMe":
            return web.json_response({"ok": True, "result": {"id": 1, "is_bot": True, "first_name": "Fake",
                                                             "username": "fake_bot"}})
        if method != "sendMessage":
            return _error(404, "Not Found")
        response = self._send_message(params, at)
        if failure is not None:  # slow: the message is recorded, the answer comes late
            await asyncio.sleep(float(failure.get("delay", 3.0)))
        return response

    def _send_message(self, params: dict[str, Any], at: float) -> web.Response:
        chat_id = str(params.get("chat_id", ""))
        text = str(params.get("text", ""))
        if self.known_chats is not None and chat_id not in self.known_chats:
            return _error(400, "Bad Request: chat not found")
        parse_mode = params.get("parse_mode")
        length: int | str = html_text_length(text) if parse_mode == "HTML" else len(text)
        if isinstance(length, str):
            return _error(400, length)
        if length == 0 or not text.strip():
            return _error(400, "Bad Request: message text is empty")
        if length > MAX_TEXT:
            return _error(400, "Bad Request: message is too long")
        with self._lock:
            message_id = len(self.messages) + 1
            self.messages.append({
                "message_id": message_id, "chat_id": chat_id, "text": text, "parse_mode": parse_mode,
                "disable_notification": params.get("disable_notification"),
                "message_thread_id": params.get("message_thread_id"),
                "link_preview_options": params.get("link_preview_options"), "at": at,
            })
        chat_type = "group" if chat_id.startswith(("-", "@")) else "private"
        chat_num = int(chat_id) if chat_id.lstrip("-").isdigit() else -1
        return web.json_response({"ok": True, "result": {
            "message_id": message_id, "date": int(at), "text": text,
            "chat": {"id": chat_num, "type": chat_type},
        }})

    async def _fail(self, request: web.Request, failure: dict[str, Any]) -> web.StreamResponse:
        kind = failure["kind"]
        if kind == "429":
            n = int(failure.get("retry_after", 1))
            return _error(429, f"Too Many Requests: retry after {n}", retry_after=n)
        if kind == "401":
            return _error(401, "Unauthorized")
        if kind == "400":
            return _error(400, failure.get("description", "Bad Request: chat not found"))
        if kind == "403":
            return _error(403, failure.get("description", "Forbidden: bot was blocked by the user"))
        if kind == "migrate":
            return _error(400, "Bad Request: group chat was upgraded to a supergroup chat",
                          migrate_to_chat_id=int(failure.get("new_chat_id", -1009876543210)))
        if kind == "502":
            return _error(502, "Bad Gateway")
        if kind == "502html":
            body = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway" \
                   "</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n</body>\r\n</html>\r\n"
            return web.Response(status=502, text=body, content_type="text/html")
        if kind == "drop":
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError
        raise ValueError(f"unknown failure kind {kind!r}")

    # ---- lifecycle -----------------------------------------------------------------------------
    async def start(self, port: int = 0) -> FakeBotAPI:
        self._runner = web.AppRunner(self._app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, port)
        await site.start()
        sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
        self.port = sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start_in_thread(self, port: int = 0) -> FakeBotAPI:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.start(port))
            except BaseException as exc:  # surface bind errors to the caller
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-telegram", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        return self

    def stop_thread(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> FakeBotAPI:
        return self.start_in_thread()

    def __exit__(self, *exc: object) -> None:
        self.stop_thread()


class FakeBotAPIProcess:
    """The fake as a separate process, driven through its HTTP control endpoints."""

    def __init__(self, tokens: Iterable[str] = ("123456:TEST-TOKEN",), chats: Iterable[str] = ("42",)):
        args = [sys.executable, "-m", "tests.fakes.telegram_api"]
        for token in tokens:
            args += ["--token", token]
        for chat in chats:
            args += ["--chat", str(chat)]
        from pathlib import Path

        repo = Path(__file__).resolve().parents[2]
        self.proc = subprocess.Popen(args, cwd=repo, stdout=subprocess.PIPE, text=True)
        self.base_url = self.control_url = ""
        assert self.proc.stdout is not None
        for _ in range(2):
            key, _, value = self.proc.stdout.readline().strip().partition("=")
            if key == "BASE_URL":
                self.base_url = value
            elif key == "CONTROL_URL":
                self.control_url = value
        if not self.base_url:
            self.stop()
            raise RuntimeError("fake Telegram server did not start")

    def _call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.control_url}/{path}", data=data,
                                     headers={"Content-Type": "application/json"})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(req, timeout=10) as resp:
            return json.loads(resp.read())

    def fail_next(self, kind: str, method: str = "sendMessage", times: int = 1, **opts: Any) -> None:
        self._call("fail", {"kind": kind, "method": method, "times": times, **opts})

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self._call("messages")

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self._call("requests")

    def reset(self) -> None:
        self._call("reset", {})

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> FakeBotAPIProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Loopback fake Telegram Bot API")
    parser.add_argument("--token", action="append", help="accepted bot token (repeatable; default: any)")
    parser.add_argument("--chat", action="append", help="known chat id (repeatable; default: any)")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    server = FakeBotAPI(tokens=args.token, known_chats=args.chat)

    async def serve() -> None:
        await server.start(args.port)
        print(f"BASE_URL={server.base_url}", flush=True)
        print(f"CONTROL_URL={server.control_url}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await server.stop()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
