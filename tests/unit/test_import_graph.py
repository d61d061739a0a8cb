"""No module under coin_cli imports the entry point (coin_cli.startup) or the root app (coin_cli.app),
except the entry point's own chain: `python -m coin_cli` -> startup -> app. Read from the source with ast,
so an import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import coin_cli

PACKAGE = Path(coin_cli.__file__).resolve().parent
ENTRY_CHAIN = {"coin_cli.__main__": {"coin_cli.startup"}, "coin_cli.startup": {"coin_cli.app"}}
TOP = {"coin_cli.app", "coin_cli.startup"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, absolute names (relative imports resolved; `from a import b`
    counts as importing `a.b` too, since b may be a module)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def test_the_helper_sees_absolute_relative_and_function_level_imports() -> None:
    probe = PACKAGE / "commands" / "notify.py"
    seen = imported_modules(probe)
    assert "coin_cli.gcpause" in seen            # imported inside the command function
    assert "coin_cli.commands._options" in seen   # a module-level `from ... import`


def test_nothing_under_coin_cli_imports_the_app_or_the_entry_point() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        bad = (imported_modules(path) & TOP) - ENTRY_CHAIN.get(name, set())
        if bad:
            offenders.append(f"{name} imports {', '.join(sorted(bad))}")
    assert offenders == []
