"""Standalone fake Binance: `python -m tests.fakes.binance [--port N] [--series SYM:IV:START_MS[:END_MS]]...`

Prints `BASE_URL=http://127.0.0.1:PORT` on the first stdout line (binance.api_url is that + `/api`),
then serves until SIGTERM/SIGINT. Drive it over HTTP: POST /_control/{fail,clock,weight,series,reset},
GET /_control/{requests,health}.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from tests.fakes.binance.market import add_series
from tests.fakes.binance.server import FakeBinance


async def _main(args: argparse.Namespace) -> None:
    fake = FakeBinance(weight_limit=args.weight_limit)
    for spec in args.series:
        parts = spec.split(":")
        add_series(fake, parts[0], parts[1], int(parts[2]), int(parts[3]) if len(parts) > 3 else None)
    await fake.start(args.port)
    sys.stdout.write(f"BASE_URL={fake.base_url}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await fake.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.binance")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--weight-limit", type=int, default=6000)
    parser.add_argument("--series", action="append", default=[], help="SYMBOL:INTERVAL:START_MS[:END_MS]")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
