"""Data benchmarks (issue 3): import + validate, validate, store read, download, peak memory.

    .venv/bin/python benchmarks/bench_data.py            # all, prints a markdown table
    .venv/bin/python benchmarks/bench_data.py --quick    # fewer repeats

Targets: import+validate one month of 1m (44,640 rows, archive zip) < 0.3 s; validate 1M rows < 0.5 s;
store read 1M rows < 0.2 s; download 100k candles from the loopback fake < 5 s; peak memory of
importing or validating 1M rows < 600 MB. Each figure is the median of repeats, next to a reference
measured in the same run (the bare library call the step is built on), after one untimed warm-up
call. Peak memory is a fresh child process's RSS high-water mark (VmHWM), which includes the
interpreter and the imported libraries (~120 MB). The machine is shared (2 cores, other jobs
running): expect noise.

    .venv/bin/python -m benchmarks --only data   # against python-binance and bare pyarrow

What moved the figures while building: lz4 instead of zstd parquet (read 0.54 s -> 0.07-0.12 s;
files 47 -> 63 MB); writable column copies without block consolidation; streaming the CSV/zip
member into pyarrow in 4 MB blocks (import peak ~735 -> ~370-430 MB); merging column by column and
skipping a merge that changes nothing (re-import ~770 -> ~490 MB); grouping download pages once a
store rewrite costs more than a quarter of the fetch time (100k download 6.1 s -> 2-2.5 s; writing
every page made it quadratic).
"""

from __future__ import annotations

import argparse
import io
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

NAME = "data"
TITLE = "6. Data: download, import, validate, read"
ORDER = 60
MINUTE = 60_000
# The peer of `coin data download`: python-binance's own paging helper against the same fake, in a
# fresh process. It sleeps 1 s after every third page by design ("to be kind to the API"); with
# --no-sleep that pause is patched out in this child so the transfer itself is compared.
BINANCE_PEER = """
import sys, time
from binance.client import Client
if "--no-sleep" in sys.argv:
    time.sleep = lambda seconds: None
Local = type("Local", (Client,), {"API_URL": sys.argv[1]})
rows = Local(ping=False).get_historical_klines("BTCUSDT", "1m", int(sys.argv[2]))
assert len(rows) >= 100_000, len(rows)
"""
PYARROW_PEER = """
import sys, zipfile, pyarrow.csv as pacsv
with zipfile.ZipFile(sys.argv[1]) as zf, zf.open(zf.namelist()[0]) as fh:
    table = pacsv.read_csv(fh, read_options=pacsv.ReadOptions(autogenerate_column_names=True))
assert table.num_rows == 44_640
"""
JAN_2025_MS = 1_735_689_600_000


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of `repeats` calls after `warmup` untimed ones (first-call costs aside)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def archive_zip(folder: Path, rows: int, name: str) -> Path:
    """A Binance-style monthly archive: headerless 12 columns, µs timestamps (a 2025 file), zipped."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from coin_cli.data.bootstrap import generate_candles

    frame = generate_candles(rows, "1m", seed=3, start_ms=JAN_2025_MS)
    columns = {c: frame[c].to_numpy() for c in frame.columns}
    columns["open_time"] = columns["open_time"] * 1000
    columns["close_time"] = columns["open_time"] + MINUTE * 1000 - 1
    columns["ignore"] = np.zeros(rows, dtype=np.int64)
    buffer = io.BytesIO()
    pacsv.write_csv(pa.table(columns), buffer, write_options=pacsv.WriteOptions(include_header=False))
    path = folder / f"{name}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{name}.csv", buffer.getvalue())
    return path


def settings_for(root: Path, interval: str = "1m", api_url: str | None = None) -> object:
    from coin_cli.config import Settings

    data = {"paths": {"runs_dir": str(root / "runs"), "data_dir": str(root / "data")},
            "data": {"interval": interval}}
    if api_url:
        data["binance"] = {"api_url": api_url}
    return Settings.model_validate(data)


def bench_import_month(tmp: Path, repeats: int) -> dict[str, float]:
    import pyarrow.csv as pacsv

    from coin_cli.data.service import import_dataset, store_for
    from coin_cli.data.validate import validate_frame

    path = archive_zip(tmp, 44_640, "BTCUSDT-1m-2025-01")
    counter = iter(range(10_000))

    def run() -> None:
        root = tmp / f"import-{next(counter)}"
        settings = settings_for(root)
        import_dataset(settings, [path], now_ms=2_000_000_000_000)
        validate_frame(store_for(settings).read("BTCUSDT", "1m"), "1m", now_ms=2_000_000_000_000)

    raw = zipfile.ZipFile(path).read("BTCUSDT-1m-2025-01.csv")
    reference = median_time(lambda: pacsv.read_csv(io.BytesIO(raw),
                                                    read_options=pacsv.ReadOptions(autogenerate_column_names=True)),
                            repeats)
    return {"seconds": median_time(run, repeats), "reference": reference}


def bench_million(tmp: Path, repeats: int) -> dict[str, dict[str, float]]:
    import numpy as np
    import pyarrow.parquet as pq

    from coin_cli.data.bootstrap import generate_candles
    from coin_cli.data.store import CandleStore
    from coin_cli.data.validate import validate_frame

    frame = generate_candles(1_000_000, "1m", seed=5)
    store = CandleStore(tmp / "million", "binance")
    store.replace("BTCUSDT", "1m", frame, "bootstrap")
    path = store.path("BTCUSDT", "1m")

    def bare_pass() -> None:  # one vectorised pass over every column: the floor for any checker
        for col in frame.columns:
            values = frame[col].to_numpy()
            np.isfinite(values) if values.dtype.kind == "f" else np.diff(values)

    validate = median_time(lambda: validate_frame(frame, "1m", now_ms=2_000_000_000_000), repeats)
    read = median_time(lambda: store.read("BTCUSDT", "1m"), repeats)
    return {
        "validate": {"seconds": validate, "reference": median_time(bare_pass, repeats)},
        "read": {"seconds": read, "reference": median_time(lambda: pq.read_table(path).to_pandas(), repeats)},
        "file_mb": {"seconds": path.stat().st_size / 1e6, "reference": 0.0},
    }


def bench_download(tmp: Path, repeats: int) -> dict[str, float]:
    import asyncio

    import aiohttp

    from coin_cli.data.service import download_dataset
    from tests.fakes.binance import FakeBinanceProcess

    now = int(time.time() * 1000)
    start = now - now % MINUTE - 100_000 * MINUTE
    with FakeBinanceProcess("--series", f"BTCUSDT:1m:{start}") as fake:
        counter = iter(range(100))

        def run() -> None:
            root = tmp / f"download-{next(counter)}"
            summary = download_dataset(settings_for(root, api_url=fake.api_url), str(start), None)
            assert summary["rows"] >= 100_000, summary

        async def raw_pages() -> None:  # the same 101 pages, fetched and JSON-decoded, stored nowhere
            async with aiohttp.ClientSession() as session:
                cursor = start
                while True:
                    url = f"{fake.api_url}/v3/klines?symbol=BTCUSDT&interval=1m&startTime={cursor}&limit=1000"
                    async with session.get(url) as response:
                        rows = await response.json()
                    if len(rows) < 1000:
                        return
                    cursor = rows[-1][0] + 1

        import binance  # noqa: F401  (one-time import cost kept out of the timing)

        seconds = median_time(run, repeats)
        reference = median_time(lambda: asyncio.run(raw_pages()), repeats)
    return {"seconds": seconds, "reference": reference}


def peak_memory(mode: str, tmp: Path) -> float:
    """Max RSS (MB) of a fresh process that imports or validates 1M rows."""
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(tmp)], capture_output=True, text=True,
                         check=True)
    return float(out.stdout.strip().splitlines()[-1])


def child(mode: str, tmp: Path) -> None:
    """`import`: into an empty store; `reimport`: the same file again into that store (merge of two
    million-row tables); `validate`: read the stored million rows and validate them."""
    from coin_cli.data.service import import_dataset, store_for
    from coin_cli.data.validate import validate_frame

    path = tmp / "BTCUSDT-1m-million.zip"
    settings = settings_for(tmp / "child-store")
    if mode in ("import", "reimport"):
        import_dataset(settings, [path], now_ms=2_000_000_000_000)
    else:
        validate_frame(store_for(settings).read("BTCUSDT", "1m"), "1m", now_ms=2_000_000_000_000)
    print(peak_rss_mb())


def peak_rss_mb() -> float:
    """This process's RSS high-water mark. VmHWM, not ru_maxrss: on Linux ru_maxrss survives exec, so a
    child started by a big parent would report the parent's size."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _wall(cmd: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} failed ({proc.returncode}): {proc.stderr[-1500:]}")
    return time.perf_counter() - started


def _coin_env(**extra: str) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("COIN_", "BINANCE_", "TELEGRAM_"))}
    env.update(extra)
    return env


def run_benchmark(ctx: Any) -> list[Any]:
    from tests.fakes.binance import FakeBinanceProcess

    coin = [sys.executable, "-m", "coin_cli"]
    cmd = "python -m benchmarks --only data  (coin alone: .venv/bin/python benchmarks/bench_data.py)"
    counter = iter(range(10_000))
    figs = []
    now = int(time.time() * 1000)
    start = now - now % MINUTE - 100_000 * MINUTE
    with FakeBinanceProcess("--series", f"BTCUSDT:1m:{start}") as fake:
        env = _coin_env(COIN_BINANCE__API_URL=fake.api_url)

        def coin_download() -> float:
            root = ctx.tmp / f"dl-{next(counter)}"
            return _wall([*coin, "--data-dir", str(root / "data"), "--runs-dir", str(root / "runs"), "data",
                          "download", "--symbol", "BTCUSDT", "--interval", "1m", "--start", str(start)], env)

        def peer(*flags: str) -> float:
            return _wall([sys.executable, "-c", BINANCE_PEER, fake.api_url, str(start), *flags])

        rounds = ctx.rounds({"coin": coin_download, "peer": lambda: peer("--no-sleep")}, repeats=ctx.repeats(3, 1),
                            warmup=not ctx.quick)
        label = "`coin data download`, 100,000 1m candles from the loopback fake (whole command, stored)"
        figs.append(ctx.figure(label, rounds, "coin", peer="python-binance get_historical_klines, its 1 s "
                               "pauses patched out (fetched, not stored)", peer_key="peer", command=cmd,
                               note="the fake Binance runs on the same 2 cores"))
        if not ctx.quick:
            sleeping = ctx.rounds({"coin": coin_download, "peer": peer}, repeats=1, warmup=False)
            figs.append(ctx.figure(label, sleeping, "coin", peer="python-binance get_historical_klines as shipped "
                                   "(sleeps 1 s every 3 pages)", peer_key="peer", command=cmd, note="one round"))

    load0 = __import__("os").getloadavg()[0]
    service = bench_download(ctx.tmp, ctx.repeats(3, 1))
    figs.append(ctx.figure("download 100,000 candles in-process (the service, as issue 3 measured it)", None,
                           value=service["seconds"], peer="the same 101 pages via bare aiohttp, not stored",
                           peer_value=service["reference"], goal=("<", 5.0), command=cmd))
    figs[-1].load = (load0, __import__("os").getloadavg()[0])
    path = archive_zip(ctx.tmp, 44_640, "BTCUSDT-1m-2025-01")

    def coin_import() -> float:
        root = ctx.tmp / f"im-{next(counter)}"
        return _wall([*coin, "--data-dir", str(root / "data"), "--runs-dir", str(root / "runs"), "data", "import",
                      str(path), "--symbol", "BTCUSDT", "--interval", "1m"], _coin_env())

    rounds = ctx.rounds({"coin": coin_import, "peer": lambda: _wall([sys.executable, "-c", PYARROW_PEER, str(path)])},
                        repeats=ctx.repeats(5, 3))
    figs.append(ctx.figure("`coin data import` of a month archive (44,640 1m rows, zip), whole command", rounds,
                           "coin", peer="bare pyarrow CSV read of the zip, whole process", peer_key="peer",
                           command=cmd))
    load0 = __import__("os").getloadavg()[0]
    month = bench_import_month(ctx.tmp, ctx.repeats(5, 3))
    figs.append(ctx.figure("import + validate of that archive, in-process (the service)", None,
                           value=month["seconds"], peer="pyarrow.csv parse of the CSV", peer_value=month["reference"],
                           goal=("<", 0.3), command=cmd))
    million = bench_million(ctx.tmp, ctx.repeats(5, 3))
    figs.append(ctx.figure("validate 1,000,000 rows", None, value=million["validate"]["seconds"],
                           peer="one numpy pass over every column", peer_value=million["validate"]["reference"],
                           goal=("<", 0.5), command=cmd))
    figs.append(ctx.figure("store read 1,000,000 rows", None, value=million["read"]["seconds"],
                           peer="pq.read_table().to_pandas()", peer_value=million["read"]["reference"],
                           goal=("<", 0.2), command=cmd, note=f"parquet (lz4) {million['file_mb']['seconds']:.1f} MB"))
    if ctx.quick:
        figs.append(ctx.figure("peak RSS of 1,000,000-row import / re-import / read + validate", None,
                               command=cmd, note="not measured in --quick (goal < 600 MB each)"))
    else:
        archive_zip(ctx.tmp, 1_000_000, "BTCUSDT-1m-million")
        labels = {"import": "peak RSS, import 1,000,000 rows (archive zip) into an empty store",
                  "reimport": "peak RSS, re-import them into that store (merge 1M + 1M)",
                  "validate": "peak RSS, read + validate 1,000,000 rows"}
        for mode, label in labels.items():
            figs.append(ctx.figure(label, None, value=peak_memory(mode, ctx.tmp), unit="MB", goal=("<", 600.0),
                                   command=cmd, note="VmHWM of a fresh process, ~120 MB of it interpreter + libraries"))
    for fig in figs[-6:]:
        if fig.load is None or fig.repeats == 0:
            fig.load = (load0, __import__("os").getloadavg()[0])
    return figs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "DIR"))
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    repeats = 3 if args.quick else 7
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        month = bench_import_month(tmp, repeats)
        million = bench_million(tmp, max(3, repeats // 2))
        download = bench_download(tmp, 3 if not args.quick else 1)
        archive_zip(tmp, 1_000_000, "BTCUSDT-1m-million")
        memory = {mode: peak_memory(mode, tmp) for mode in ("import", "reimport", "validate")}
    rows = [
        ("import + validate 44,640 rows (archive zip, µs)", month, 0.3, "s", "pyarrow.csv parse of the CSV"),
        ("validate 1,000,000 rows", million["validate"], 0.5, "s", "one numpy pass over every column"),
        ("store read 1,000,000 rows", million["read"], 0.2, "s", "pq.read_table().to_pandas()"),
        ("download 100,000 candles (fake in a separate process)", download, 5.0, "s",
         "the same pages via bare aiohttp, not stored"),
    ]
    print("| measurement | median | target | reference | ratio |")
    print("| --- | --- | --- | --- | --- |")
    for name, fig, target, unit, ref_name in rows:
        ratio = fig["seconds"] / fig["reference"] if fig["reference"] else float("nan")
        print(f"| {name} | {fig['seconds']:.3f} {unit} | < {target} {unit} | {ref_name}: "
              f"{fig['reference']:.3f} {unit} | {ratio:.1f}x |")
    print(f"| peak RSS, import 1,000,000 rows (archive zip) into an empty store | {memory['import']:.0f} MB "
          "| < 600 MB | - | - |")
    print(f"| peak RSS, re-import them into that store (merge 1M + 1M) | {memory['reimport']:.0f} MB "
          "| < 600 MB | - | - |")
    print(f"| peak RSS, read + validate 1,000,000 rows | {memory['validate']:.0f} MB | < 600 MB | - | - |")
    print(f"| parquet size, 1,000,000 rows | {million['file_mb']['seconds']:.1f} MB | - | - | - |")


if __name__ == "__main__":
    main()
