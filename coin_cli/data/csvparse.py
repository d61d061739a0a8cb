"""Candle CSV text -> columns: the Binance kline layout (12 columns, header or not) and the generic
`open_time_ms,open,high,low,close,volume` layout.

pyarrow parses (fast, multi-threaded); when it refuses a file, a slow pass with the csv module
finds the first bad line, column and value so the error names them.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from coin_cli.data.schema import INT_COLUMNS, REQUIRED_COLUMNS
from coin_cli.errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa

BINANCE_KLINE_COLUMNS = (
    "open_time", "open", "high", "low", "close", "volume",
    "close_time", "quote_volume", "trades", "taker_buy_base", "taker_buy_quote", "ignore",
)
GENERIC_HEADER = "open_time_ms,open,high,low,close,volume"
Opener = Callable[[], IO[bytes]]
"""Opens the CSV bytes afresh (a file, or a member of a zip): parsed as a stream, never held whole."""

# header spellings seen in the wild -> store column (None: read and dropped)
_HEADER_NAMES: dict[str, str | None] = {
    "open_time_ms": "open_time", "open_time": "open_time", "opentime": "open_time",
    "open": "open", "high": "high", "low": "low", "close": "close", "volume": "volume",
    "close_time": "close_time", "closetime": "close_time",
    "quote_volume": "quote_volume", "quote_asset_volume": "quote_volume",
    "count": "trades", "trades": "trades", "number_of_trades": "trades",
    "taker_buy_volume": "taker_buy_base", "taker_buy_base": "taker_buy_base",
    "taker_buy_base_asset_volume": "taker_buy_base",
    "taker_buy_quote_volume": "taker_buy_quote", "taker_buy_quote": "taker_buy_quote",
    "taker_buy_quote_asset_volume": "taker_buy_quote",
    "ignore": None,
}


@dataclass
class ParsedCsv:
    table: pa.Table          # store column names; int64 / float64
    header: bool             # the file had a header line (line numbers shift by one)
    layout: str              # "binance-archive" (12 kline columns) or "csv" (generic)


def parse_candle_csv(source: Opener | bytes, label: str) -> ParsedCsv:
    """Parse one CSV file; DataError naming `label`, the line and the value on bad input."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    opener: Opener = (lambda: io.BytesIO(source)) if isinstance(source, bytes) else source
    with opener() as fh:
        head = fh.read(1 << 16)
    first_line = _first_line(head, label)
    fields = [f.strip() for f in first_line.split(",")]
    header = not _is_number(fields[0])
    if header:
        names = _header_columns(fields, label)
    elif len(fields) == len(BINANCE_KLINE_COLUMNS):
        names = list(BINANCE_KLINE_COLUMNS)
    else:
        raise DataError(
            f"{label}: line 1: {len(fields)} columns and no header; expected the 12-column Binance kline "
            f"layout or a header line `{GENERIC_HEADER}`"
        )
    keep = [n for n in names if n is not None and not n.startswith("_")]
    types = {n: pa.int64() if n in INT_COLUMNS else pa.float64() for n in keep}
    read_options = pacsv.ReadOptions(column_names=[n or f"_drop{i}" for i, n in enumerate(names)],
                                     skip_rows=1 if header else 0, block_size=1 << 22)
    convert_options = pacsv.ConvertOptions(column_types=types, include_columns=keep,
                                           strings_can_be_null=False, quoted_strings_can_be_null=False)
    try:
        with opener() as fh:
            table = pacsv.read_csv(fh, read_options=read_options, convert_options=convert_options)
    except pa.ArrowInvalid as exc:
        raise DataError(_diagnose(opener, names, header, label) or f"{label}: {str(exc).splitlines()[0]}") from None
    if table.num_rows == 0:
        raise DataError(f"{label}: no candle rows" + (" (only a header)" if header else ""))
    layout = "binance-archive" if "close_time" in keep else "csv"
    return ParsedCsv(table=table, header=header, layout=layout)


def _first_line(data: bytes, label: str) -> str:
    stripped = data.lstrip()
    if not stripped:
        raise DataError(f"{label}: empty file")
    line = stripped.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        return line.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{label}: line 1: not UTF-8 text (is this really a CSV file?)") from None


def _header_columns(fields: list[str], label: str) -> list[str | None]:
    names: list[str | None] = []
    for raw in fields:
        key = raw.strip().strip('"').lower().replace(" ", "_")
        if key not in _HEADER_NAMES:
            raise DataError(
                f"{label}: line 1: unexpected column {raw!r}; expected `{GENERIC_HEADER}` "
                "or the 12 Binance kline columns"
            )
        names.append(_HEADER_NAMES[key])
    present = [n for n in names if n]
    missing = [c for c in REQUIRED_COLUMNS if c not in present]
    if missing:
        raise DataError(f"{label}: line 1: missing column(s) {', '.join(missing)} (expected `{GENERIC_HEADER}`)")
    doubled = sorted({n for n in present if present.count(n) > 1})
    if doubled:
        raise DataError(f"{label}: line 1: column(s) {', '.join(doubled)} appear twice")
    return names


def _diagnose(opener: Opener, names: list[str | None], header: bool, label: str) -> str | None:
    """Find the first bad line the slow way, for a precise message."""
    with opener() as fh:
        return _first_bad_line(io.TextIOWrapper(fh, encoding="utf-8", errors="replace", newline=""),
                               names, header, label)


def _first_bad_line(text: IO[str], names: list[str | None], header: bool, label: str) -> str | None:
    for line_no, row in enumerate(csv.reader(text), start=1):
        if header and line_no == 1:
            continue
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != len(names):
            return f"{label}: line {line_no}: {len(row)} columns, expected {len(names)} (truncated or wrong layout?)"
        for name, value in zip(names, row, strict=True):
            if name is None:
                continue
            if name in INT_COLUMNS:
                if not _is_int(value):
                    return f"{label}: line {line_no}: column {name}: {value!r} is not a whole number"
            elif not _is_number(value):
                return f"{label}: line {line_no}: column {name}: {value!r} is not a number"
    return None


def _is_number(value: str) -> bool:
    try:
        number = float(value)
    except ValueError:
        return False
    return not math.isinf(number) or value.strip().lower() in {"inf", "-inf"}


def _is_int(value: str) -> bool:
    try:
        int(value.strip())
    except ValueError:
        return False
    return True
