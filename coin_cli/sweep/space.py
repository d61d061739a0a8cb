"""The sweep's search-space file (YAML), read and checked before any trial runs.

    trials: 4                    # optional: the default of --trials
    max_concurrent: 2            # optional: the default of --max-concurrent
    fixed:                       # optional: settings every trial gets (section.key: value)
      train.timesteps: 4096
      train.eval_freq: 1024
    space:                       # what the sampler searches: key: {kind: arguments}
      env.trade_band: {uniform: [0.0, 0.2]}
      env.reward: {choice: [log_return, log_return_turnover_penalty]}
      env.discrete_levels: {choice: [[0, 1], [0, 0.5, 1]]}
      algo.learning_rate: {loguniform: [0.0001, 0.001]}
      train.seed: {int: [1, 1000]}

Keys are `train.<key>` / `env.<key>` (any field of those sections, see configs/default.yaml) or
`algo.<argument>` (a stable-baselines3 argument of the algorithm, e.g. learning_rate, gamma,
ent_coef, n_steps; it becomes train.algo_params). Kinds: `choice: [values]`, `uniform: [low, high]`,
`loguniform: [low, high]` (low > 0), `int: [low, high]` (both included). Every value a trial could
get is validated like a setting before the sweep starts: a bad file is one `error:` line naming
the file and the key, exit 2.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coin_cli.config import Settings
from coin_cli.errors import ConfigError

KINDS = ("choice", "uniform", "loguniform", "int")
SECTIONS = ("train", "env")
TOP_KEYS = ("trials", "max_concurrent", "fixed", "space")
NOT_SEARCHABLE = {"train.tensorboard", "train.algo_params"}  # algo.<name> sets algo_params


@dataclass
class Dimension:
    key: str  # "env.trade_band" or "algo.learning_rate"
    kind: str
    args: list[Any]

    @property
    def encoded(self) -> bool:
        """Choices that are not plain scalars (lists) travel as JSON text: Optuna's categorical
        values must be None, bool, int, float or str."""
        return self.kind == "choice" and any(isinstance(v, list | dict) for v in self.args)

    def decode(self, value: Any) -> Any:
        return json.loads(value) if self.encoded else value


@dataclass
class SweepSpace:
    path: Path
    fixed: dict[str, Any] = field(default_factory=dict)
    dimensions: list[Dimension] = field(default_factory=list)
    trials: int | None = None
    max_concurrent: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"file": str(self.path), "fixed": self.fixed, "trials": self.trials,
                "max_concurrent": self.max_concurrent,
                "space": {d.key: {d.kind: d.args} for d in self.dimensions}}

    def tune_space(self) -> dict[str, Any]:
        """The Ray Tune search space (OptunaSearch converts it to Optuna distributions)."""
        from ray import tune

        out: dict[str, Any] = {}
        for d in self.dimensions:
            if d.kind == "choice":
                out[d.key] = tune.choice([json.dumps(v) for v in d.args] if d.encoded else d.args)
            elif d.kind == "uniform":
                out[d.key] = tune.uniform(*d.args)
            elif d.kind == "loguniform":
                out[d.key] = tune.loguniform(*d.args)
            else:
                out[d.key] = tune.randint(d.args[0], d.args[1] + 1)  # randint's upper bound is excluded
        return out

    def decode(self, config: dict[str, Any]) -> dict[str, Any]:
        """A trial's config (as Tune gives it) -> {key: value} with lists decoded."""
        return {d.key: d.decode(config[d.key]) for d in self.dimensions if d.key in config}


def load_space(path: Path, settings: Settings) -> SweepSpace:
    """Read and validate `path` against `settings` (the sweep's base settings)."""
    import yaml

    where = str(path)
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{where}: sweep space file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot read the sweep space file ({exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        raise ConfigError(f"{where}:{at} YAML syntax error: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping with `space:` (and optionally trials, max_concurrent, fixed)")
    for key in raw:
        if key not in TOP_KEYS:
            raise ConfigError(f"{where}: {key}: unknown key (expected {', '.join(TOP_KEYS)})")
    space = SweepSpace(Path(path))
    for name in ("trials", "max_concurrent"):
        value = raw.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ConfigError(f"{where}: {name}: expected a whole number >= 1, got {value!r}")
        setattr(space, name, value)
    fixed = raw.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise ConfigError(f"{where}: fixed: expected a mapping of `section.key: value`")
    dims = raw.get("space")
    if not isinstance(dims, dict) or not dims:
        raise ConfigError(f"{where}: space: expected a mapping of `section.key: {{kind: arguments}}` "
                          "with at least one key")
    algos = _algos(settings, fixed, dims)
    for key, value in fixed.items():
        _check_key(where, "fixed", str(key), algos)
        _check_value(where, f"fixed.{key}", settings, str(key), value, algos)
        space.fixed[str(key)] = value
    for key, value in dims.items():
        key = str(key)
        _check_key(where, "space", key, algos)
        if key in space.fixed:
            raise ConfigError(f"{where}: space.{key}: also in fixed (a key is either fixed or searched)")
        space.dimensions.append(_dimension(where, key, value, settings, algos))
    return space


def apply(settings: Settings, values: dict[str, Any]) -> Settings:
    """`settings` with `{section.key: value}` set (algo.<name> into train.algo_params)."""
    from coin_cli.config import dump_settings

    data = dump_settings(settings)
    for key, value in values.items():
        section, _, name = key.partition(".")
        if section == "algo":
            data["train"].setdefault("algo_params", {})[name] = value
        else:
            data[section][name] = value
    return Settings.model_validate(data)


# ---- checks -----------------------------------------------------------------------------------

def _algos(settings: Settings, fixed: dict[str, Any], dims: dict[str, Any]) -> list[str]:
    """The algorithms a trial can train (algo.* keys must be arguments of each)."""
    if "train.algo" in fixed:
        return [str(fixed["train.algo"])]
    spec = dims.get("train.algo")
    if isinstance(spec, dict) and isinstance(spec.get("choice"), list):
        return [str(v) for v in spec["choice"]]
    return [settings.train.algo]


def _check_key(where: str, part: str, key: str, algos: list[str]) -> None:
    section, dot, name = key.partition(".")
    if not dot or not name:
        raise ConfigError(f"{where}: {part}.{key}: expected `train.<key>`, `env.<key>` or `algo.<argument>`")
    if section == "algo":
        from coin_cli.agents.sb3 import ALGORITHMS, check_algo_params

        for algo in algos:
            if algo in ALGORITHMS:
                check_algo_params(algo, {name: None}, where=f"{where}: {part}.algo")
        return
    if section not in SECTIONS:
        raise ConfigError(f"{where}: {part}.{key}: only train.*, env.* and algo.* can be set by a sweep")
    fields = Settings.model_fields[section].annotation.model_fields  # type: ignore[union-attr]
    if name not in fields:
        raise ConfigError(f"{where}: {part}.{key}: unknown key (check the spelling; see configs/default.yaml)")
    if key in NOT_SEARCHABLE:
        raise ConfigError(f"{where}: {part}.{key}: not settable by a sweep"
                          + (" (use algo.<argument>)" if key == "train.algo_params" else ""))


def _check_value(where: str, label: str, settings: Settings, key: str, value: Any, algos: list[str]) -> None:
    from pydantic import ValidationError

    if key.startswith("algo."):
        if not isinstance(value, int | float | str | bool):
            raise ConfigError(f"{where}: {label}: expected a number, text or true/false, got {value!r}")
        return
    try:
        apply(settings, {key: value})
    except ValidationError as exc:
        err = exc.errors()[0]
        message = str(err["msg"]).removeprefix("Value error, ").removeprefix("Input should be ")
        raise ConfigError(f"{where}: {label}: expected {message}, got {value!r}") from None


def _dimension(where: str, key: str, value: Any, settings: Settings, algos: list[str]) -> Dimension:
    label = f"space.{key}"
    if not isinstance(value, dict) or len(value) != 1:
        raise ConfigError(f"{where}: {label}: expected one of {{choice: [...]}}, {{uniform: [low, high]}}, "
                          f"{{loguniform: [low, high]}}, {{int: [low, high]}}, got {value!r}")
    kind, args = next(iter(value.items()))
    if kind not in KINDS:
        raise ConfigError(f"{where}: {label}: unknown kind {kind!r} (expected {', '.join(KINDS)})")
    if not isinstance(args, list) or not args:
        raise ConfigError(f"{where}: {label}.{kind}: expected a list, got {args!r}")
    if kind == "choice":
        for option in args:
            _check_value(where, f"{label}.choice", settings, key, option, algos)
        return Dimension(key, kind, list(args))
    if len(args) != 2 or not all(isinstance(a, int | float) and not isinstance(a, bool) for a in args):
        raise ConfigError(f"{where}: {label}.{kind}: expected [low, high] (two numbers), got {args!r}")
    low, high = args
    if not low < high:
        raise ConfigError(f"{where}: {label}.{kind}: expected low < high, got {args!r}")
    if kind == "loguniform" and low <= 0:
        raise ConfigError(f"{where}: {label}.loguniform: expected low > 0, got {args!r}")
    if kind == "int" and not (isinstance(low, int) and isinstance(high, int)):
        raise ConfigError(f"{where}: {label}.int: expected two whole numbers, got {args!r}")
    for bound in (low, high):
        _check_value(where, f"{label}.{kind}", settings, key, bound, algos)
    return Dimension(key, kind, [low, high])
