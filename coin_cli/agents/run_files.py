"""Reading a `coin train` run folder's JSON files, with errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from coin_cli.errors import DataError


def read_run_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: not found (is this a finished `coin train` run?)") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object")
    return data
