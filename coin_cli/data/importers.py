"""Import candle files: Binance bulk-archive klines (.zip or .csv, ms or µs, optional .CHECKSUM)
and the generic OHLCV CSV. Every file is read and checked before anything is written, so a bad
file leaves the store exactly as it was.
"""

from __future__ import annotations

import functools
import hashlib
import re
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from coin_cli.data.csvparse import Opener, parse_candle_csv
from coin_cli.data.schema import CANDLE_COLUMNS, INTERVALS, conform, interval_ms, is_calendar, normalize_interval
from coin_cli.data.validate import ERROR, check_candles
from coin_cli.errors import DataError, UsageError

if TYPE_CHECKING:
    import pandas as pd

US_THRESHOLD = 10**15   # spot archive files from 2025-01-01 hold µs: 1735689600000000
MS_FLOOR = 10**11       # below this a timestamp is not ms (1973) -- likely seconds
_FILE_CHECKS = ("grid", "close_time", "nan", "negative", "ohlc")
_ARCHIVE_NAME = re.compile(
    r"^(?P<symbol>[A-Z0-9]+)-(?P<interval>" + "|".join(re.escape(i) for i in (*INTERVALS, "1mo"))
    + r")-\d{4}-\d{2}(-\d{2})?\.(zip|csv)$"
)

Progress = Callable[[int, int | None, str | None], None]


@dataclass
class ImportedFile:
    label: str
    layout: str
    rows: int
    unit: str
    checksum: str
    header: bool
    duplicates_dropped: int = 0
    open_dropped: int = 0
    frame: pd.DataFrame | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.label, "layout": self.layout, "rows": self.rows, "unit": self.unit,
                "checksum": self.checksum, "header": self.header,
                "duplicates_dropped": self.duplicates_dropped, "open_dropped": self.open_dropped}


def expand_paths(paths: list[Path]) -> list[Path]:
    """Files to import: the given files, and the .zip/.csv files inside given folders (sorted)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in {".zip", ".csv"})
            if not inside:
                raise DataError(f"{path}: folder holds no .zip or .csv files")
            files.extend(inside)
        elif path.name.upper().endswith(".CHECKSUM"):
            continue  # read beside its file
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"{path}: no such file")
    if not files:
        raise UsageError("no candle files to import")
    return files


def read_files(paths: list[Path], symbol: str, interval: str, now_ms: int | None = None,
               progress: Progress | None = None) -> tuple[pd.DataFrame, list[ImportedFile]]:
    """Read and check every file; return the combined table (later files win) and per-file facts."""
    from coin_cli.data.store import merge_frames

    interval = normalize_interval(interval)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    files = expand_paths(paths)
    imported: list[ImportedFile] = []
    for k, path in enumerate(files):
        if progress:
            progress(k, len(files), f"reading {path.name}")
        _check_file_name(path, symbol, interval)
        checksum = verify_checksum(path)
        try:
            for label, opener in _sources(path):
                item = read_one(opener, label, interval, now)
                item.checksum = checksum
                imported.append(item)
        except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: not a readable zip archive, truncated or corrupt ({exc})") from None
    if progress:
        progress(len(files), len(files), "merging")
    combined = None
    for item in imported:
        assert item.frame is not None
        combined = merge_frames(combined, item.frame)
        item.frame = None  # free memory early
    assert combined is not None
    return combined, imported


def read_one(source: Opener | bytes, label: str, interval: str, now_ms: int) -> ImportedFile:
    """Parse and check one CSV payload; DataError naming the file and line on the first problem."""
    parsed = parse_candle_csv(source, label)
    table = parsed.table
    offset = 2 if parsed.header else 1  # row index -> line number

    def line(i: int) -> str:
        return f"line {i + offset}"

    opens = table.column("open_time").to_numpy()
    unit = _unit(opens, label, line)
    frame = _to_frame(table, unit)
    layout, header = parsed.layout, parsed.header
    del table, parsed
    _release_arrow_memory()
    for check in check_candles(frame, interval, now_ms, label=line, checks=_FILE_CHECKS):
        if check.status == ERROR:
            raise DataError(f"{label}: {check.detail}")
    _check_spacing(frame, interval, label)
    frame, duplicates = _drop_duplicates(frame, label, line)
    closes = frame["close_time"].to_numpy() if "close_time" in frame.columns else None
    open_mask = (closes >= now_ms) if closes is not None else _derived_open(frame, interval, now_ms)
    open_dropped = int(open_mask.sum())
    if open_dropped:
        frame = frame.loc[~open_mask].reset_index(drop=True)
    return ImportedFile(label=label, layout=layout, rows=len(frame), unit=unit, checksum="none",
                        header=header, duplicates_dropped=duplicates, open_dropped=open_dropped,
                        frame=conform(frame, interval))


def verify_checksum(path: Path) -> str:
    """Check `<file>.CHECKSUM` (sha256sum format) when it exists: "verified" or "none"."""
    sidecar = path.with_name(path.name + ".CHECKSUM")
    if not sidecar.is_file():
        return "none"
    text = sidecar.read_text(encoding="utf-8", errors="replace").strip()
    parts = text.split()
    if not parts or not re.fullmatch(r"[0-9a-fA-F]{64}", parts[0]):
        raise DataError(f"{sidecar}: not a sha256sum line (`<64 hex>  <file name>`)")
    named = parts[-1].lstrip("*") if len(parts) > 1 else path.name
    if Path(named).name != path.name:
        raise DataError(f"{sidecar}: checksum is for {named!r}, not {path.name!r}")
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest().lower() != parts[0].lower():
        raise DataError(f"{path}: sha256 {digest.hexdigest()} does not match {sidecar.name} ({parts[0].lower()}); "
                        "the download is corrupt or incomplete")
    return "verified"


def _sources(path: Path) -> Iterator[tuple[str, Opener]]:
    """(label, opener) of each CSV in a zip, or of the file itself; nothing is read whole."""
    if path.suffix.lower() != ".zip":
        yield str(path), functools.partial(open, path, "rb")
        return
    with zipfile.ZipFile(path) as archive:
        names = sorted(n for n in archive.namelist() if n.lower().endswith(".csv") and not n.endswith("/"))
        if not names:
            raise DataError(f"{path}: zip archive holds no .csv file")
        for name in names:
            yield f"{path}:{name}", functools.partial(archive.open, name)


def _release_arrow_memory() -> None:
    """Give the parser's freed buffers back to the OS before the (numpy) merge allocates its own."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


def _check_file_name(path: Path, symbol: str, interval: str) -> None:
    """Binance archive names carry symbol and interval: refuse to file them under other ones."""
    match = _ARCHIVE_NAME.match(path.name)
    if not match:
        return
    named_interval = normalize_interval(match["interval"])
    if match["symbol"] != symbol.upper():
        raise DataError(f"{path}: file name says {match['symbol']}, importing as {symbol.upper()} "
                        f"(use --symbol {match['symbol']})")
    if named_interval != interval:
        raise DataError(f"{path}: file name says {named_interval} candles, importing as {interval} "
                        f"(use --interval {named_interval})")


def _unit(opens: np.ndarray, label: str, line: Callable[[int], str]) -> str:
    """ms or µs for the whole file, from the magnitude of its timestamps (never from dates)."""
    is_us = opens >= US_THRESHOLD
    if is_us.all():
        return "us"
    if is_us.any():
        i = int(np.flatnonzero(is_us != is_us[0])[0])
        raise DataError(f"{label}: {line(i)}: open_time {int(opens[i])} switches between ms and µs in one file")
    low = opens < MS_FLOOR
    if low.any():
        i = int(np.flatnonzero(low)[0])
        raise DataError(f"{label}: {line(i)}: open_time {int(opens[i])} is not in ms or µs since 1970 "
                        "(seconds? multiply by 1000)")
    return "ms"


def _to_frame(table: Any, unit: str) -> pd.DataFrame:
    import pandas as pd

    cols = {name: table.column(name).to_numpy() for name in table.column_names if name in CANDLE_COLUMNS}
    if unit == "us":
        for name in ("open_time", "close_time"):
            if name in cols:
                cols[name] = cols[name] // 1000
    return pd.DataFrame(cols, copy=False)


def _check_spacing(frame: pd.DataFrame, interval: str, label: str) -> None:
    """A 5m file imported as 1m passes the grid check; its typical spacing gives it away."""
    if is_calendar(interval) or len(frame) < 3:
        return
    steps = np.diff(np.sort(frame["open_time"].to_numpy()))
    steps = steps[steps > 0]
    if not len(steps):
        return
    typical = int(np.median(steps))
    step = interval_ms(interval)
    if typical != step:
        guess = next((name for name in INTERVALS if interval_ms(name) == typical), f"{typical} ms")
        raise DataError(f"{label}: candles are {guess} apart, not {interval} (check --interval)")


def _drop_duplicates(frame: pd.DataFrame, label: str, line: Callable[[int], str]) -> tuple[pd.DataFrame, int]:
    """Identical repeated rows are dropped; the same open_time with other values is an error."""
    times = frame["open_time"].to_numpy()
    if len(times) < 2 or bool(np.all(times[1:] > times[:-1])):
        return frame, 0
    order = np.argsort(times, kind="stable")
    st = times[order]
    same = np.flatnonzero(st[1:] == st[:-1])
    for j in same:
        a, b = int(order[j]), int(order[j + 1])
        for col in frame.columns:
            x, y = frame[col].iat[a].item(), frame[col].iat[b].item()
            if x != y and not (x != x and y != y):
                raise DataError(f"{label}: {line(b)}: open_time {int(times[b])} repeats {line(a)} "
                                f"with a different {col} ({y!r} vs {x!r})")
    keep = np.ones(len(times), dtype=bool)
    keep[order[same + 1]] = False
    return frame.loc[keep].sort_values("open_time", kind="stable").reset_index(drop=True), len(same)


def _derived_open(frame: pd.DataFrame, interval: str, now_ms: int) -> np.ndarray:
    from coin_cli.data.schema import close_times

    return close_times(frame["open_time"].to_numpy(), interval) >= now_ms
