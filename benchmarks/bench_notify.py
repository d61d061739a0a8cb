"""`coin notify "hi"` end to end against the loopback fake Bot API (target: at most 1.1x the
libraries-only send measured in the same rounds; earlier < 0.6 s wall), with
`python -c pass` and `coin --version` measured in the same run as references, plus the cost of
the imports it needs and the runtime side (OutboxNotifier.notify, outbox enqueue).

    .venv/bin/python benchmarks/bench_notify.py [--repeats 15]
    .venv/bin/python -m benchmarks --only notify

Wall times are medians of subprocess runs timed with time.perf_counter (interleaved, so machine
load hits every command alike). Pacing is set to 0 here: back-to-back runs to one chat would
otherwise wait for the 1 message/s limit on purpose, which is not start-up cost.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import clean_env  # noqa: E402
from tests.fakes.telegram_api import FakeBotAPI, FakeBotAPIProcess  # noqa: E402

NAME = "notify"
TITLE = "5. CLI cold start"
ORDER = 51
TOKEN = "123456:BENCH-TOKEN"
# The floor: the libraries `coin notify` is built on, one message sent with them and a table
# printed, with no coin code at all and the interpreter's default garbage collection (coin pauses
# the collector during start-up: coin_cli/startup.py).
LIBRARIES_ONLY = """
import asyncio, os, sqlite3, typer, typer._adapters, pydantic, rich.console, rich.table
from telegram import Bot
from telegram.request import HTTPXRequest
async def send():
    request = HTTPXRequest(connection_pool_size=1, httpx_kwargs={"trust_env": False, "verify": False})
    async with request:
        bot = Bot(os.environ["TELEGRAM_BOT_TOKEN"], base_url=os.environ["COIN_TELEGRAM__API_URL"],
                  request=request, get_updates_request=request)
        await bot.send_message(chat_id=os.environ["TELEGRAM_CHAT_ID"], text="hi")
asyncio.run(send())
rich.console.Console().print(rich.table.Table("status", "parts"))
"""
BIN = Path(sys.executable).parent


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds user+sys of the child): CPU time is what other load cannot inflate much."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def stats(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[max(0, int(len(ordered) * 0.9) - 1)]


def import_breakdown(cwd: Path, env: dict[str, str]) -> list[tuple[str, float]]:
    """Cumulative import time (ms) of the top-level packages a `coin notify` run loads."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "coin_cli", "notify", "breakdown"],
                            cwd=cwd, env=env, capture_output=True, text=True)
    totals: dict[str, float] = {}
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part.strip() for part in line[len("import time:"):].split("|"))
        if not name.startswith(" ") and cumulative.isdigit():
            top = name.strip()
            if "." not in top or top.startswith("coin_cli."):
                totals[top] = totals.get(top, 0.0) + int(cumulative) / 1000
    return sorted(totals.items(), key=lambda kv: -kv[1])[:10]


def runtime_side(tmp: Path) -> dict[str, float]:
    from coin_cli.config import PathsConfig, Secrets, Settings, TelegramConfig
    from coin_cli.monitoring.notifier import Alert
    from coin_cli.monitoring.outbox import Outbox
    from coin_cli.monitoring.telegram_notifier import OutboxNotifier

    server = FakeBotAPI(tokens=[TOKEN], known_chats=["42"]).start_in_thread()
    try:
        settings = Settings(paths=PathsConfig(runs_dir=tmp / "rt"),
                            telegram=TelegramConfig(api_url=server.base_url, min_interval=0.0, dedupe_window=0.0))
        notifier = OutboxNotifier(settings, Secrets(telegram_bot_token=TOKEN, telegram_chat_id="42"))
        alerts = [Alert(code="BENCH", text=f"alert {i}", time=datetime.now(UTC)) for i in range(200)]
        calls = []
        for alert in alerts:
            start = time.perf_counter()
            notifier.notify(alert)
            calls.append(time.perf_counter() - start)
        start = time.perf_counter()
        notifier.close(timeout=120)
        drain = time.perf_counter() - start
        delivered = len(server.messages)
    finally:
        server.stop_thread()
    box = Outbox(tmp / "bench-outbox.sqlite")
    enqueue = []
    for i in range(200):
        start = time.perf_counter()
        box.enqueue("42", [(f"m{i}", None)], parse_mode="html")
        enqueue.append(time.perf_counter() - start)
    box.close()
    return {"notify_call_us_median": statistics.median(calls) * 1e6, "notify_call_us_max": max(calls) * 1e6,
            "delivered": delivered, "drain_200_s": drain, "enqueue_ms_median": statistics.median(enqueue) * 1e3}


def run_benchmark(ctx: Any) -> list[Any]:
    """`coin notify "hi"` against the libraries-only send, both delivering to the fake Bot API (a
    separate process), in the same interleaved rounds; the runtime's OutboxNotifier.notify call."""
    with FakeBotAPIProcess(tokens=[TOKEN], chats=["42"]) as server:
        env = clean_env({"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_CHAT_ID": "42",
                         "COIN_TELEGRAM__API_URL": server.base_url, "COIN_TELEGRAM__MIN_INTERVAL": "0",
                         "COIN_TELEGRAM__DEDUPE_WINDOW": "0"})
        commands = {"pass": [sys.executable, "-c", "pass"], "libraries": [sys.executable, "-c", LIBRARIES_ONLY],
                    "notify": [str(BIN / "coin"), "notify", "hi"]}
        contenders = {name: (lambda cmd=cmd: timed(cmd, ctx.tmp, env)[0]) for name, cmd in commands.items()}
        rounds = ctx.rounds(contenders, repeats=ctx.repeats(full=11, quick=5))
        sent = len(server.messages)
    runtime = runtime_side(ctx.tmp)
    cmd = "python -m benchmarks --only notify  (details: .venv/bin/python benchmarks/bench_notify.py)"
    expected = 2 * (len(rounds.samples["notify"]) + 1)
    return [
        ctx.figure('coin notify "hi" (loopback fake Bot API)', rounds, "notify", peer="libraries-only send",
                   peer_key="libraries", goal=("<", 0.6), command=cmd,
                   note=f"messages received by the fake: {sent} of {expected}"),
        ctx.figure('coin notify "hi" vs the libraries-only send', rounds, "notify", peer="libraries-only send",
                   peer_key="libraries", goal=(">=", 1 / 1.1), goal_on="ratio", command=cmd,
                   note="goal (issue 14): at most 1.1x the libraries' time, i.e. speed ratio >= 0.91"),
        ctx.figure('coin notify "hi" vs python -c pass', rounds, "notify", peer="python -c pass", peer_key="pass",
                   command=cmd),
        ctx.figure("OutboxNotifier.notify(alert) in the trading loop (median of 200)", None,
                   value=runtime["notify_call_us_median"], unit="us", command=cmd,
                   note=f"max {runtime['notify_call_us_max']:.0f} µs; 200 alerts delivered in "
                        f"{runtime['drain_200_s']:.2f} s by the background thread"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name, FakeBotAPIProcess(tokens=[TOKEN], chats=["42"]) as server:
        tmp = Path(tmp_name)
        env = clean_env({"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_CHAT_ID": "42",
                         "COIN_TELEGRAM__API_URL": server.base_url, "COIN_TELEGRAM__MIN_INTERVAL": "0",
                         "COIN_TELEGRAM__DEDUPE_WINDOW": "0"})
        coin = str(BIN / "coin")
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import telegram'": [sys.executable, "-c", "import telegram"],
            "libraries only: send with PTB + typer, pydantic, rich": [sys.executable, "-c", LIBRARIES_ONLY],
            "coin --version": [coin, "--version"],
            "coin notify --help": [coin, "notify", "--help"],
            'coin notify "hi"': [coin, "notify", "hi"],
        }
        for cmd in commands.values():  # warm the page cache and .pyc files
            timed(cmd, tmp, env)
        samples: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        load_before = os.getloadavg()[0]
        for _ in range(args.repeats):
            for name, cmd in commands.items():
                wall, used = timed(cmd, tmp, env)
                samples[name].append(wall)
                cpu[name].append(used)
        load_after = os.getloadavg()[0]
        sent = len(server.messages)
        breakdown = import_breakdown(tmp, env)
        runtime = runtime_side(tmp)

    base = statistics.median(samples["python -c pass"])
    version = statistics.median(samples["coin --version"])
    floor = statistics.median(samples["libraries only: send with PTB + typer, pydantic, rich"])
    print(f"# bench_notify  cpus={os.cpu_count()}  repeats={args.repeats}  python={sys.version.split()[0]}  "
          f"load average {load_before:.1f} -> {load_after:.1f}")
    print("| command | wall median s | wall p90 s | CPU median s | x python -c pass | x coin --version |")
    print("|---|---|---|---|---|---|")
    for name, values in samples.items():
        med, p90 = stats(values)
        print(f"| `{name}` | {med:.3f} | {p90:.3f} | {statistics.median(cpu[name]):.3f} | {med / base:.1f} "
              f"| {med / version:.2f} |")
    print(f"\nmessages received by the fake: {sent} (expected {2 * (args.repeats + 1)})")
    print("\nimport cost in one `coin notify` run (cumulative ms, -X importtime):")
    for name, ms in breakdown:
        print(f"  {name:40s} {ms:7.1f}")
    print("\nruntime side (OutboxNotifier, 200 alerts; outbox enqueue with fsync):")
    for key, value in runtime.items():
        print(f"  {key:24s} {value:10.2f}")
    notify_med = statistics.median(samples['coin notify "hi"'])
    print(f"\ncoin notify against the libraries-only send (default garbage collection): "
          f"{notify_med - floor:+.3f} s ({notify_med / floor:.2f}x)")
    ratio = notify_med / floor
    cpu_ratio = statistics.median(cpu['coin notify "hi"']) / statistics.median(
        cpu["libraries only: send with PTB + typer, pydantic, rich"])
    print(f"\ntarget (issue 14): coin notify <= 1.1x the libraries-only send -> {ratio:.2f}x wall, "
          f"{cpu_ratio:.2f}x CPU: {'OK' if ratio <= 1.1 else 'MISSED'}")
    print(f"earlier target: coin notify < 0.6 s wall -> median {notify_med:.3f} s: "
          f"{'OK' if notify_med < 0.6 else 'MISSED'}")


if __name__ == "__main__":
    main()
