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


# Ray Tune and Optuna are the optional [sweep] extra: only coin_cli/sweep/ may import them (inside
# functions), so every other command works without the extra and never pays for the import.
SWEEP_ONLY = ("ray", "optuna")


def test_only_the_sweep_package_imports_ray_or_optuna() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        if name.startswith("coin_cli.sweep"):
            continue
        bad = {m for m in imported_modules(path) if m.split(".")[0] in SWEEP_ONLY}
        if bad:
            offenders.append(f"{name} imports {', '.join(sorted(bad))}")
    assert offenders == []
    sweep_modules = {m for path in (PACKAGE / "sweep").rglob("*.py") for m in imported_modules(path)}
    assert {"ray.tune", "optuna"} <= {m for m in sweep_modules if m.split(".")[0] in SWEEP_ONLY}


def test_the_sweep_package_imports_ray_only_inside_functions() -> None:
    import ast

    # progress.py holds the Tune callback, which must be a module-level class (Tune pickles it with
    # the experiment): it imports ray at the top, so no module may import IT at the top
    for path in sorted((PACKAGE / "sweep").rglob("*.py")):
        if path.name == "progress.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:  # module level only
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any(n.split(".")[0] in SWEEP_ONLY for n in names), f"{path.name}: {names}"
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ImportFrom):
                names = [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            assert not any(n.startswith("coin_cli.sweep.progress") for n in names), f"{path.name}: {names}"
