"""Standalone fake Binance: `python -m tests.fakes.binance [--port N] [--series SYM:IV:START_MS[:END_MS]]...
[--candles SYM:IV:HISTORY:CSV_PATH]... [--heartbeat S] [--account KEY:SECRET[:ASSET=AMOUNT,...]]`

Prints `BASE_URL=http://127.0.0.1:PORT` on the first stdout line (binance.api_url is that + `/api`),
then serves until SIGTERM/SIGINT (or until its parent process is gone). Drive it over HTTP:
POST /_control/<action> (see README.md), GET /_control/{requests,health}.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from tests.fakes.binance.account import setup_account
from tests.fakes.binance.market import add_candles, add_series
from tests.fakes.binance.server import FakeBinance


async def _main(args: argparse.Namespace) -> None:
    fake = FakeBinance(weight_limit=args.weight_limit, heartbeat=args.heartbeat)
    for spec in args.series:
        parts = spec.split(":")
        add_series(fake, parts[0], parts[1], int(parts[2]), int(parts[3]) if len(parts) > 3 else None)
    for spec in args.candles:
        symbol, interval, history, path = spec.split(":", 3)
        add_candles(fake, symbol, interval, path, history=int(history))
    if args.account:
        key, secret, *rest = args.account.split(":", 2)
        balances = dict(item.split("=", 1) for item in rest[0].split(",")) if rest and rest[0] else {}
        setup_account(fake, key, secret, balances)
    await fake.start(args.port)
    sys.stdout.write(f"BASE_URL={fake.base_url}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    parent = os.getppid()
    while not stop.is_set():  # bounded: a test that died without stopping us does not leave us running
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except TimeoutError:
            if os.getppid() != parent:
                break
    await fake.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.binance")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--weight-limit", type=int, default=6000)
    parser.add_argument("--series", action="append", default=[], help="SYMBOL:INTERVAL:START_MS[:END_MS]")
    parser.add_argument("--candles", action="append", default=[], help="SYMBOL:INTERVAL:HISTORY:CSV_PATH")
    parser.add_argument("--account", help="KEY:SECRET[:ASSET=AMOUNT,...] the account signed requests use")
    parser.add_argument("--heartbeat", type=float, default=20.0, help="WebSocket ping period in seconds")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
