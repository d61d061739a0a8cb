"""YAML for settings: read config files and environment values, write a run's config.yaml.

Every command that does work reads its environment overrides and writes config.yaml, but PyYAML
costs ~15-20 ms to import and its pure-Python loader ~8 ms per config file, a tenth of a
`coin notify`. So the two common shapes are handled here without it: environment values that
are plainly a string or a number, and the settings document (a mapping of sections holding
scalars and lists). Anything else goes to PyYAML (its C loader and dumper when present), and the
tests hold both paths to PyYAML's own answers.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

# A letter first and no space, '#', quote, bracket or brace: PyYAML reads such a value as this
# very string unless it is one of YAML 1.1's boolean or null words, or ends in ':'.
_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_./:@%+~-]*")
_RESERVED = {"yes", "no", "true", "false", "on", "off", "null"}
_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_FLOAT = re.compile(r"[-+]?[0-9]+\.[0-9]+")
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")


class YAMLSyntaxError(ValueError):
    """A file is not valid YAML; `where` is ` line L, column C` when known."""

    def __init__(self, problem: str, where: str = ""):
        super().__init__(f"{where}: {problem}" if where else problem)
        self.problem, self.where = problem, where


def is_plain_string(text: str) -> bool:
    """True when YAML reads `text`, unquoted, back as exactly this string."""
    return bool(_PLAIN.fullmatch(text)) and not text.endswith(":") and text.lower() not in _RESERVED


def parse_scalar(raw: str) -> Any:
    """An environment value read as YAML (`0.3` -> 0.3, `[1, 2]` -> list); unparsable -> `raw`."""
    if is_plain_string(raw):
        return raw
    if _INT.fullmatch(raw):
        return int(raw)
    if _FLOAT.fullmatch(raw):
        return float(raw)
    yaml = _pyyaml()
    try:
        return yaml.safe_load(raw)  # the pure-Python loader: libyaml differs on odd whitespace
    except yaml.YAMLError:
        return raw


def load(text: str) -> Any:
    """Parse a YAML document (safe types only); YAMLSyntaxError says where it is wrong."""
    yaml = _pyyaml()
    try:
        return yaml.load(text, Loader=_loader(yaml))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise YAMLSyntaxError(getattr(exc, "problem", None) or "invalid YAML", where) from None


def dump(data: Mapping[str, Any]) -> str:
    """Block-style YAML of `data`, keys in their order; PyYAML reads it back equal to `data`."""
    try:
        return "".join(_mapping(data, ""))
    except _Unsimple:
        yaml = _pyyaml()
        return yaml.dump(dict(data), Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False,
                         allow_unicode=True)


class _Unsimple(Exception):
    """A value outside the shapes this module writes itself: PyYAML writes the document."""


def _mapping(data: Mapping[str, Any], indent: str) -> list[str]:
    lines: list[str] = []
    for key, value in data.items():
        if not isinstance(key, str) or not is_plain_string(key):
            raise _Unsimple
        if isinstance(value, Mapping):
            lines.append(f"{indent}{key}:" + (" {}\n" if not value else "\n"))
            lines.extend(_mapping(value, indent + "  "))
        elif isinstance(value, list | tuple):
            lines.append(f"{indent}{key}: [{', '.join(_scalar(item) for item in value)}]\n")
        else:
            lines.append(f"{indent}{key}: {_scalar(value)}\n")
    return lines


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
        text = repr(value).lower()
        # YAML 1.1 floats need a dot: PyYAML would read 1e-05 back as a string.
        return text.replace("e", ".0e", 1) if "." not in text and "e" in text else text
    if isinstance(value, str):
        if is_plain_string(value):
            return value
        if _PRINTABLE_ASCII.fullmatch(value):
            return json.dumps(value)  # a JSON string is a valid YAML double-quoted scalar
    raise _Unsimple


def _pyyaml() -> Any:
    import yaml

    return yaml


def _loader(yaml: Any) -> Any:
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)
