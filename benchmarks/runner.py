"""The benchmark runner behind `python -m benchmarks`: figures, interleaved rounds, discovery.

Plug-in interface (how a benchmark module joins the run):

    # benchmarks/bench_<name>.py
    NAME = "orders"                       # the key for `--only orders`
    TITLE = "Orders: decision -> wire"    # the section heading in the table and RESULTS.md
    ORDER = 75                            # position among the sections (lower first)

    def run_benchmark(ctx: Context) -> list[Figure]:
        rounds = ctx.rounds({"coin": coin_once, "peer": peer_once})  # each callable returns one number
        return [ctx.figure("what is measured", rounds, "coin", unit="/s", higher_is_better=True,
                           peer="peer", goal=(">=", 1000.0), command="...")]

Every `benchmarks/bench_*.py` that defines `run_benchmark` is picked up (sorted by ORDER);
modules without it (bench_live.py) are driven by an adapter in benchmarks/suites.py. A module
whose import fails (a missing peer) is reported as a row saying why, never skipped in silence.
"""

from __future__ import annotations

import importlib
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "benchmarks"


def load_average() -> float:
    return os.getloadavg()[0]


@dataclass
class Rounds:
    """Samples of several contenders measured in the same interleaved rounds."""

    samples: dict[str, list[float]]
    load: tuple[float, float]

    def median(self, name: str) -> float:
        return statistics.median(self.samples[name])

    def ratio_median(self, a: str, b: str) -> float:
        """Median over rounds of a / b: each round compares like with like on a noisy machine."""
        return statistics.median(x / y for x, y in zip(self.samples[a], self.samples[b], strict=True) if y)


@dataclass
class Figure:
    """One row of the table: coin's figure, its peer in the same rounds and the goal."""

    section: str
    name: str
    value: float | None
    unit: str = ""
    higher_is_better: bool = False
    peer: str | None = None
    peer_value: float | None = None
    ratio: float | None = None          # speed ratio: > 1 means coin is faster/better than the peer
    goal: str = ""
    met: bool | None = None
    command: str = ""
    load: tuple[float, float] | None = None
    repeats: int = 0
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def check_goal(value: float | None, goal: tuple[str, float] | None) -> tuple[str, bool | None]:
    if goal is None:
        return "", None
    op, threshold = goal
    text = f"{op} {threshold:,.0f}" if threshold >= 1000 else f"{op} {threshold:.3g}"
    if value is None:
        return text, None
    met = {"<": value < threshold, "<=": value <= threshold, ">": value > threshold,
           ">=": value >= threshold}[op]
    return text, met


@dataclass
class Context:
    """What a benchmark module gets: the mode, a scratch folder, and the measuring helpers."""

    quick: bool
    tmp: Path
    section: str = ""
    command: str = ""
    figures: list[Figure] = field(default_factory=list)

    def repeats(self, full: int = 5, quick: int = 3) -> int:
        return quick if self.quick else full

    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def rounds(self, contenders: dict[str, Callable[[], float]], repeats: int | None = None,
               warmup: bool = True) -> Rounds:
        """Call every contender once per round, rounds interleaved, after one untimed warm-up
        round; each callable returns its own measured number (seconds, steps/s, ...)."""
        repeats = repeats or self.repeats()
        if warmup:
            for fn in contenders.values():
                fn()
        before = load_average()
        samples: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(repeats):
            for name, fn in contenders.items():
                samples[name].append(fn())
        return Rounds(samples, (before, load_average()))

    def figure(self, name: str, rounds: Rounds | None, key: str | None = None, *, value: float | None = None,
               unit: str = "s", higher_is_better: bool = False, peer: str | None = None,
               peer_key: str | None = None, peer_value: float | None = None, goal: tuple[str, float] | None = None,
               goal_on: str = "value", command: str = "", note: str = "") -> Figure:
        """A row from `rounds[key]` (median) against `rounds[peer_key]`, or from explicit values.
        `goal_on`: the goal applies to the value (`value`) or to the speed ratio (`ratio`)."""
        ratio = None
        repeats = 0
        if rounds is not None and key is not None:
            value = rounds.median(key)
            repeats = len(rounds.samples[key])
            if peer_key is not None:
                peer_value = rounds.median(peer_key)
                per_round = rounds.ratio_median(key, peer_key)
                ratio = per_round if higher_is_better else 1.0 / per_round
        if ratio is None and value and peer_value:
            ratio = value / peer_value if higher_is_better else peer_value / value
        goal_text, met = check_goal(ratio if goal_on == "ratio" else value, goal)
        if goal_on == "ratio" and goal_text:
            goal_text = f"speed ratio {goal_text}"
        elif goal_text and unit:
            goal_text = f"{goal_text} {unit}"
        fig = Figure(self.section, name, value, unit, higher_is_better, peer, peer_value, ratio, goal_text, met,
                     command or self.command, rounds.load if rounds else (load_average(), load_average()),
                     repeats, note)
        return fig

    def unavailable(self, name: str, peer: str, reason: str, command: str = "") -> Figure:
        """A peer that cannot run here: a row saying so."""
        return Figure(self.section, name, None, peer=peer, command=command or self.command,
                      note=f"peer not available: {reason}")


@dataclass
class Suite:
    name: str
    title: str
    order: int
    run: Callable[[Context], list[Figure]] | None
    error: str = ""


def _declared(path: Path) -> dict[str, Any] | None:
    """NAME/TITLE/ORDER of a module that defines run_benchmark, read without importing it (so
    `--list` and `--only` never pay for, or fail on, the other modules' imports)."""
    import ast

    tree = ast.parse(path.read_text())
    names = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    if "run_benchmark" not in names:
        return None
    out: dict[str, Any] = {"NAME": path.stem.removeprefix("bench_"), "TITLE": path.stem, "ORDER": 500}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            key = node.targets[0].id
            if key in out and isinstance(node.value, ast.Constant):
                out[key] = node.value.value
    return out


def _loader(module_name: str) -> Callable[[Context], list[Figure]]:
    def run(ctx: Context) -> list[Figure]:
        return importlib.import_module(f"{PACKAGE}.{module_name}").run_benchmark(ctx)

    return run


def discover() -> list[Suite]:
    """Every benchmarks/bench_*.py with `run_benchmark`, plus the adapters in suites.py."""
    from benchmarks import suites

    found: dict[str, Suite] = {}
    for path in sorted((REPO / PACKAGE).glob("bench_*.py")):
        declared = _declared(path)
        if declared is not None:
            name = declared["NAME"]
            found[name] = Suite(name, declared["TITLE"], declared["ORDER"], _loader(path.stem))
    for adapter in suites.ADAPTERS:
        if adapter.name not in found:
            found[adapter.name] = adapter
    return sorted(found.values(), key=lambda s: (s.order, s.name))


def run_suite(suite: Suite, ctx: Context) -> tuple[list[Figure], float]:
    ctx.section = suite.title
    started = time.perf_counter()
    if suite.run is None:
        return [Figure(suite.title, suite.name, None, note=suite.error)], 0.0
    try:
        figures = suite.run(ctx)
    except Exception as exc:  # one broken benchmark must not lose the others' figures
        import traceback

        traceback.print_exc(file=sys.stderr)
        figures = [Figure(suite.title, f"{suite.name} (failed)", None, note=f"error: {type(exc).__name__}: {exc}")]
    for fig in figures:
        fig.section = suite.title
    return figures, time.perf_counter() - started
