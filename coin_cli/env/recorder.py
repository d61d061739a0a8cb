"""Per-step trace of an episode: time, price, action, target, position, cash, equity, fee, reward."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from coin_cli.fsio import atomic_write_text

TRACE_COLUMNS = ("step", "open_time", "price", "action", "target", "position", "qty", "cash", "equity",
                 "fee", "traded_qty", "fill_price", "reward")


class Recorder:
    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []

    def clear(self) -> None:
        self.rows.clear()

    def record(self, *row: Any) -> None:
        """One row in TRACE_COLUMNS order."""
        self.rows.append(row)

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> list[Any]:
        index = TRACE_COLUMNS.index(name)
        return [row[index] for row in self.rows]

    def to_columns(self) -> dict[str, list[Any]]:
        return {name: [row[i] for row in self.rows] for i, name in enumerate(TRACE_COLUMNS)}

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(TRACE_COLUMNS)
        writer.writerows(self.rows)  # str(float) is the shortest exact repr: traces compare bar for bar
        return buffer.getvalue()

    def write_csv(self, path: Path) -> Path:
        atomic_write_text(path, self.to_csv())
        return path

