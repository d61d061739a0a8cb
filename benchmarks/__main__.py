"""`python -m benchmarks [--quick] [--only NAME...] [--results PATH] [--json PATH] [--studies DIR] [--list]`

Runs every benchmark section one after another (never in parallel), prints the rich table and
rewrites benchmarks/RESULTS.md (or --results PATH). How a module joins: benchmarks/runner.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.results import STUDIES, print_table, write_results  # noqa: E402
from benchmarks.runner import Context, discover, run_suite  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats (< 5 min)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these sections (see --list)")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "RESULTS.md",
                        help="where to write the markdown (default benchmarks/RESULTS.md)")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure as JSON here")
    parser.add_argument("--studies", type=Path, default=STUDIES,
                        help="folder of recorded studies (*.md) copied into the results (default benchmarks/studies)")
    parser.add_argument("--list", action="store_true", help="list the sections and exit")
    args = parser.parse_args(argv)
    suites = discover()
    if args.list:
        for suite in suites:
            print(f"{suite.name:10s} {suite.title}{'  (' + suite.error + ')' if suite.error else ''}")
        return 0
    if args.only:
        unknown = sorted(set(args.only) - {s.name for s in suites})
        if unknown:
            print(f"error: unknown section(s) {', '.join(unknown)}; known: {', '.join(s.name for s in suites)}",
                  file=sys.stderr)
            return 2
        suites = [s for s in suites if s.name in args.only]
    figures, timings = [], {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="coin-bench-") as tmp:
        for suite in suites:
            print(f"== {suite.name}: {suite.title}", file=sys.stderr, flush=True)
            folder = Path(tmp) / suite.name
            folder.mkdir()
            rows, seconds = run_suite(suite, Context(quick=args.quick, tmp=folder))
            figures += rows
            timings[suite.name] = seconds
            print(f"   {len(rows)} figures in {seconds:.0f} s", file=sys.stderr, flush=True)
    wall = time.perf_counter() - started
    print_table(figures)
    write_results(args.results, figures, quick=args.quick, argv=argv, wall_s=wall, timings=timings,
                  studies_dir=args.studies)
    if args.json:
        args.json.write_text(json.dumps({"quick": args.quick, "wall_s": wall, "timings": timings,
                                         "figures": [f.to_dict() for f in figures]}, indent=1))
    print(f"wrote {args.results} ({len(figures)} figures, {wall / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
