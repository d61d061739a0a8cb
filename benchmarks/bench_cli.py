"""Start-up time of light commands: `coin --help`, `coin --version`, `coin notify --help`.

Whole-process wall time (subprocess + time.perf_counter), median of N runs after a warm-up,
with `python -c pass` measured in the same run as the reference for interpreter start-up.

    .venv/bin/python benchmarks/bench_cli.py [--runs 15]
    .venv/bin/python -m benchmarks --only cli

Why `coin --help` is cheap: click's plain help formatter (`rich_markup_mode=None`; Typer's rich
panels cost 0.1-0.2 s), rich imported only by commands that render a table, the collector paused
while the app imports (coin_cli/startup.py), hatchling's editable install (a .pth path, no import
hook on every start). Subcommand help costs more: Typer builds pydantic adapters for the options.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

NAME = "cli"
TITLE = "5. CLI cold start"
ORDER = 50

COMMANDS = {
    "python -c pass (reference)": [sys.executable, "-c", "pass"],
    "coin --help": [sys.executable, "-m", "coin_cli", "--help"],
    "coin --version": [sys.executable, "-m", "coin_cli", "--version"],
    "coin notify --help": [sys.executable, "-m", "coin_cli", "notify", "--help"],
}


def time_once(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def run_benchmark(ctx: Any) -> list[Any]:
    """Each command is a whole process; `python -c pass` in the same rounds is the floor."""
    cwd = Path(__file__).resolve().parents[1]
    contenders = {name: (lambda cmd=cmd: time_once(cmd, cwd)) for name, cmd in COMMANDS.items()}
    rounds = ctx.rounds(contenders, repeats=ctx.repeats(full=11, quick=5))
    cmd = "python -m benchmarks --only cli"
    ref = "python -c pass (reference)"
    goals = {"coin --help": ("<", 0.3)}
    return [ctx.figure(name, rounds, name, peer="python -c pass", peer_key=ref, goal=goals.get(name), command=cmd,
                       note="the interpreter alone is the floor, not a competitor")
            for name in COMMANDS if name != ref]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    cwd = Path(__file__).resolve().parents[1]
    results: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for cmd in COMMANDS.values():
        time_once(cmd, cwd)  # warm the page cache
    for _ in range(args.runs):  # interleaved, so drift hits every command alike
        for name, cmd in COMMANDS.items():
            results[name].append(time_once(cmd, cwd))
    ref = statistics.median(results["python -c pass (reference)"])
    print(f"{'command':28} {'median s':>9} {'min s':>7} {'max s':>7} {'x python':>9}")
    for name, samples in results.items():
        med = statistics.median(samples)
        print(f"{name:28} {med:9.3f} {min(samples):7.3f} {max(samples):7.3f} {med / ref:9.2f}")


if __name__ == "__main__":
    main()
