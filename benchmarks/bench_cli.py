"""Start-up time of light commands: `coin --help`, `coin --version`, `coin notify --help`.

Whole-process wall time (subprocess + time.perf_counter), median of N runs after a warm-up,
with `python -c pass` measured in the same run as the reference for interpreter start-up.

    .venv/bin/python benchmarks/bench_cli.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

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
