"""The object on `ctx.obj`: global options and the way commands load settings and open runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pydantic and yaml load only when a command does work
    from coin_cli.config import Settings
    from coin_cli.runs import Run


@dataclass
class AppContext:
    config_path: Path | None = None
    runs_dir: Path | None = None
    data_dir: Path | None = None
    verbose: bool = False
    json_mode: bool = False
    run: Run | None = field(default=None, repr=False)

    def settings(self, **flags: tuple[Any, str]) -> Settings:
        """Resolve settings; `flags` maps `section__key` to `(value, "--flag")` (None = not given)."""
        from coin_cli.config import load_settings

        overrides: dict[str, tuple[Any, str]] = {
            "paths.runs_dir": (self.runs_dir, "--runs-dir"),
            "paths.data_dir": (self.data_dir, "--data-dir"),
        }
        for name, pair in flags.items():
            overrides[name.replace("__", ".", 1)] = pair
        return load_settings(self.config_path, overrides=overrides)

    def open_run(self, settings: Settings, command: str, json_mode: bool = False) -> Run:
        """Create the run folder; the app prints its run_id even when the command fails."""
        from coin_cli.runs import Run

        self.json_mode = json_mode
        self.run = Run(settings.paths.runs_dir, command, settings)
        return self.run
