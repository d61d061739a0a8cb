"""Run the fake as a separate process (`python -m tests.fakes.binance`) and drive it over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]


class FakeBinanceProcess:
    """`with FakeBinanceProcess() as fake:` -> fake.api_url, fake.control(action, **body)."""

    def __init__(self, *args: str):
        self.args = list(args)
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api"

    @property
    def stream_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1) + "/"

    @property
    def ws_api_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1) + "/ws-api/v3"

    def __enter__(self) -> FakeBinanceProcess:
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.binance", *self.args], cwd=REPO,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("BASE_URL="):
            self.proc.kill()
            raise RuntimeError(f"fake Binance did not start: {line!r}")
        self.base_url = line.removeprefix("BASE_URL=")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def control(self, action: str, **body: Any) -> Any:
        data = json.dumps(body).encode() if body else None
        method = "POST" if data is not None or action not in ("requests", "health") else "GET"
        request = urllib.request.Request(f"{self.base_url}/_control/{action}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
