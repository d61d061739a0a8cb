"""Settings: pydantic models, YAML loading, environment overrides, secret redaction.

Precedence: built-in defaults < YAML file < environment `COIN_<SECTION>__<KEY>` < CLI flags.
Secrets come only from the environment and are never part of `Settings` dumps.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from coin_cli.errors import ConfigError

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveFloat = Annotated[float, Field(gt=0.0)]
NonNegFloat = Annotated[float, Field(ge=0.0)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
# Telegram chat ids are numbers in YAML and env (`chat_id: -100123`); keep them as text.
ChatId = Annotated[str, BeforeValidator(lambda v: str(v) if type(v) is int else v)]
# Symbols and exchange names become folders in the store and lock names: a pattern, not any text.
Symbol = Annotated[str, BeforeValidator(lambda v: v.strip().upper() if isinstance(v, str) else v),
                   Field(pattern=r"^[A-Z0-9][A-Z0-9_.-]{1,19}$",
                         description="a Binance symbol such as BTCUSDT (letters and digits)")]
ExchangeName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$",
                                    description="a lowercase name such as binance")]


def _folder(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise ValueError("a folder (this path is a file)")
    return path


def _levels(value: Any) -> int | list[float]:
    """env.discrete_levels: a count >= 2 (evenly spaced weights) or at least 2 different weights in
    [-1, 1] (long-only spot also needs them >= 0: checked where the action space is built)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value >= 2:
            return value
    elif isinstance(value, list | tuple) and all(isinstance(v, int | float) and not isinstance(v, bool)
                                                  for v in value):
        weights = [float(v) for v in value]
        if len(set(weights)) >= 2 and all(-1.0 <= w <= 1.0 for w in weights):
            return weights
    raise ValueError("a count >= 2 or a list of at least 2 different weights in [-1, 1], e.g. [0, 0.5, 1]")


Levels = Annotated[int | list[float], BeforeValidator(_levels)]

# Where coin writes: a file in the way would otherwise fail deep inside a command.
Folder = Annotated[Path, AfterValidator(_folder)]


def _interval(value: str) -> str:
    from coin_cli.data.schema import INTERVALS

    if value not in INTERVALS:
        raise ValueError(f"a Binance kline interval (one of {' '.join(INTERVALS)})")
    return value


# Checked here, not in the command, so the error names the variable, file or flag that set it.
Interval = Annotated[str, AfterValidator(_interval)]

SECRET_ENV_VARS = ("BINANCE_API_KEY", "BINANCE_API_SECRET", "TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID")
DEFAULT_CONFIG_PATH = Path("configs/default.yaml")
ENV_PREFIX = "COIN_"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PathsConfig(Section):
    runs_dir: Folder = Path("runs")
    data_dir: Folder = Path("data")


class DataConfig(Section):
    exchange: ExchangeName = "binance"
    symbol: Symbol = "BTCUSDT"
    interval: Interval = "1h"
    bootstrap_rows: PositiveInt = 20_000
    bootstrap_seed: int = 7
    download_page_limit: Annotated[int, Field(ge=1, le=1000)] = 1000
    max_weight_per_minute: PositiveInt = 5000


class FeaturesConfig(Section):
    return_horizons: list[PositiveInt] = Field(default_factory=lambda: [1, 4, 24])
    vol_windows: list[PositiveInt] = Field(default_factory=lambda: [24, 168])
    rsi_period: PositiveInt = 14
    ma_window: PositiveInt = 48
    volume_window: PositiveInt = 48


class EnvConfig(Section):
    initial_cash: PositiveFloat = 10_000.0
    fee_bps: NonNegFloat = 10.0
    slippage_bps: NonNegFloat = 5.0
    lookback: PositiveInt = 16
    action: Literal["continuous", "discrete"] = "continuous"
    # a count (evenly spaced weights from the lowest to 1) or the weights themselves, e.g. [0, 0.5, 1]
    discrete_levels: Levels = 2
    long_only: bool = True
    episode_length: PositiveInt = 2048
    ruin_fraction: Fraction = 0.5
    reward: Literal["log_return", "differential_sharpe", "log_return_turnover_penalty"] = "log_return"
    reward_coef: NonNegFloat | None = None  # None: the reward's own default (coin_cli/env/reward.py)
    drawdown_penalty: NonNegFloat = 0.0
    turnover_penalty: NonNegFloat = 0.0
    trade_band: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    lot_step: NonNegFloat = 0.00001
    min_qty: NonNegFloat = 0.00001
    tick_size: NonNegFloat = 0.01
    min_notional: NonNegFloat = 5.0


class PolicyConfig(Section):
    target_vol: PositiveFloat = 0.5
    vol_feature: str = "vol_24"
    max_weight: Fraction = 1.0
    rebalance_band: Fraction = 0.05


class TrainConfig(Section):
    algo: Literal["ppo", "a2c", "sac", "dqn"] = "ppo"
    # stable-baselines3 keyword arguments of the algorithm (learning_rate, gamma, ent_coef, ...)
    algo_params: dict[str, float | int | str | bool] = Field(default_factory=dict)
    timesteps: PositiveInt = 200_000
    n_envs: PositiveInt = 1
    seed: int = 7
    folds: PositiveInt = 1
    val_fraction: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.15
    test_fraction: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.15
    embargo_bars: NonNegInt = 24
    min_rows: PositiveInt = 1000
    max_nan_ratio: Fraction = 0.01
    eval_freq: PositiveInt = 10_000
    vecnormalize: bool = True
    promotion_margin: float = 0.0
    tensorboard: bool = False


class TradeConfig(Section):
    mode: Literal["replay", "paper", "live"] = "paper"
    policy: str = "voltarget"
    strategy_id: str = "coin"
    speed: NonNegFloat = 0.0
    allow_unpromoted: bool = False
    state_file: Path | None = None
    prom_file: Path | None = None
    live_enabled: bool = False       # the opt-in for --mode live (or --confirm-live on the command line)


class RiskConfig(Section):
    max_drawdown: Fraction = 0.2
    max_position: Fraction = 1.0
    max_order_notional: PositiveFloat = 1_000_000.0
    max_daily_turnover: PositiveFloat = 50.0
    reduce_drawdown: Fraction = 0.15
    flatten_on_halt: bool = True
    stale_intervals: PositiveFloat = 2.0
    reconcile_tolerance: Fraction = 0.01


class MonitoringConfig(Section):
    drift_window: PositiveInt = 500
    drift_threshold: PositiveFloat = 0.25
    stream_down_after: NonNegFloat = 30.0


class BinanceConfig(Section):
    api_url: str = "https://api.binance.com/api"
    stream_url: str = "wss://stream.binance.com:9443/"
    ws_api_url: str = "wss://ws-api.binance.com:443/ws-api/v3"
    timeout: PositiveFloat = 10.0
    max_retries: NonNegInt = 5
    recv_window: Annotated[int, Field(ge=1, le=60_000)] = 5000
    stale_after: PositiveFloat | None = None
    reconnect_base: PositiveFloat = 0.5
    reconnect_cap: PositiveFloat = 30.0


class TelegramConfig(Section):
    api_url: str = "https://api.telegram.org/bot"
    chat_id: ChatId | None = None
    parse_mode: Literal["html", "none"] = "html"
    read_timeout: PositiveFloat = 10.0
    connect_timeout: PositiveFloat = 5.0
    max_attempts: PositiveInt = 4
    retry_after_cap: NonNegFloat = 30.0
    backoff_base: NonNegFloat = 0.5
    backoff_cap: NonNegFloat = 8.0
    dedupe_window: NonNegFloat = 300.0
    min_interval: NonNegFloat = 1.0
    group_per_minute: PositiveInt = 20
    outbox: Path | None = None


class Settings(Section):
    paths: PathsConfig = Field(default_factory=PathsConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    env: EnvConfig = Field(default_factory=EnvConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    trade: TradeConfig = Field(default_factory=TradeConfig)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    binance: BinanceConfig = Field(default_factory=BinanceConfig)
    telegram: TelegramConfig = Field(default_factory=TelegramConfig)


class Secrets(BaseModel):
    """Credentials read from the environment only; never dumped."""

    model_config = ConfigDict(frozen=True)

    binance_api_key: str | None = None
    binance_api_secret: str | None = None
    telegram_bot_token: str | None = None
    telegram_chat_id: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Secrets:
        env = os.environ if env is None else env
        return cls(**{name.lower(): env.get(name) or None for name in SECRET_ENV_VARS})

    def values(self) -> list[str]:
        return [v for v in self.model_dump().values() if v]


def redact(text: str, secrets: Secrets | None = None) -> str:
    """Replace every secret value that appears in `text` by `***`."""
    return redact_values(text, (secrets or Secrets.from_env()).values())


# The shape of any Telegram bot token, configured or not (Bot API docs: "123456:ABC-DEF1234gh...",
# the bot's numeric id, ':' or its URL form %3A, then 35 URL-safe characters; `bot<token>` in a URL).
_BOT_TOKEN = re.compile(r"(?:(?<=bot)|(?<![\w-]))\d{5,15}(?::|%3A)[A-Za-z0-9_-]{30,60}(?![\w-])")


def redact_values(text: str, values: Iterable[str | None]) -> str:
    """Replace each value, and its URL-encoded form (a token's ':' in a URL), by `***`; and any
    text shaped like a Telegram bot token, whoever's it is."""
    from urllib.parse import quote

    forms = {form for v in values if v and len(v) >= 4 for form in (v, quote(v, safe=""))}
    for value in sorted(forms, key=len, reverse=True):
        text = text.replace(value, "***")
    return _BOT_TOKEN.sub("***", text)


# ---- loading --------------------------------------------------------------------------------

Overrides = Mapping[str, tuple[Any, str]]
"""`{"section.key": (value, origin)}`, e.g. `{"data.symbol": ("ETHUSDT", "--symbol")}`."""


def load_settings(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Overrides | None = None,
) -> Settings:
    """Merge defaults, YAML, environment and CLI overrides into validated Settings."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    origins: dict[tuple[str, ...], str] = {}
    file_label = "built-in defaults"

    if path is None and DEFAULT_CONFIG_PATH.is_file():
        path = DEFAULT_CONFIG_PATH
    if path is not None:
        file_label = str(path)
        data = _read_yaml(path)
        for section, keys in data.items():
            if isinstance(keys, dict):
                for key in keys:
                    origins[(section, key)] = file_label
            origins[(section,)] = file_label

    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        _set(data, section, key, _env_value(raw), origins, name)

    for dotted, (value, origin) in (overrides or {}).items():
        if value is None:
            continue
        section, _, key = dotted.partition(".")
        _set(data, section, key, value, origins, origin)

    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origins, file_label)) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save the config file as UTF-8") from None
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from None
    import yaml

    try:
        loaded = yaml.load(text, Loader=_yaml_loader(yaml))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        raise ConfigError(f"{path}:{where} YAML syntax error: {getattr(exc, 'problem', None) or exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(loaded).__name__}")
    return loaded


def _env_value(raw: str) -> Any:
    """An environment value read as YAML (`0.3` -> 0.3, `[1, 2]` -> a list); unparsable -> the text."""
    import yaml

    try:
        return yaml.load(raw, Loader=_yaml_loader(yaml))
    except yaml.YAMLError:
        return raw


def _yaml_loader(yaml: Any) -> Any:
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's C loader where installed


def _set(
    data: dict[str, Any],
    section: str,
    key: str,
    value: Any,
    origins: dict[tuple[str, ...], str],
    origin: str,
) -> None:
    existing = data.get(section)
    if not isinstance(existing, dict):
        existing = {}
        data[section] = existing
        origins[(section,)] = origin  # a section only this origin names (`COIN_FOO__BAR`: unknown `foo`)
    existing[key] = value
    origins[(section, key)] = origin


def _describe(exc: ValidationError, origins: dict[tuple[str, ...], str], file_label: str) -> str:
    err = exc.errors()[0]
    loc = tuple(str(p) for p in err["loc"])
    key_path = ".".join(loc)
    origin = origins.get(loc[:2]) or origins.get(loc[:1]) or file_label
    value = err.get("input")
    value = str(value) if isinstance(value, Path) else value
    if err["type"] == "extra_forbidden":
        return f"{origin}: {key_path}: unknown key (check the spelling; see configs/default.yaml)"
    return f"{origin}: {key_path}: {_expected(loc, err)}, got {value!r}"


def _expected(loc: tuple[str, ...], err: Mapping[str, Any]) -> str:
    field = _field_info(loc)
    if err["type"] == "model_type":
        return "expected a section of `key: value` lines"
    if field is None:
        return _pydantic_expected(err)
    if err["type"] == "string_pattern_mismatch" and field.description:
        return f"expected {field.description}"
    if err["type"] == "value_error":
        return f"expected {err['ctx']['error']}"
    bounds = {}
    for meta in field.metadata:
        for name in ("ge", "gt", "le", "lt"):
            if getattr(meta, name, None) is not None:
                bounds[name] = getattr(meta, name)
    annotation = field.annotation
    kind = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}.get(annotation)
    if kind is None:
        args = getattr(annotation, "__args__", ())
        if args and all(isinstance(a, str) for a in args):
            return "expected one of " + ", ".join(repr(a) for a in args)
        return _pydantic_expected(err)
    low = bounds.get("ge", bounds.get("gt"))
    high = bounds.get("le", bounds.get("lt"))
    if low is not None and high is not None:
        return f"expected {kind} between {_num(low)} and {_num(high)}"
    if low is not None:
        return f"expected {kind} {'>=' if 'ge' in bounds else '>'} {_num(low)}"
    return f"expected {kind}"


def _pydantic_expected(err: Mapping[str, Any]) -> str:
    """pydantic's own words, as an expectation: "Input should be greater than 0" -> "expected greater than 0"."""
    message = str(err["msg"])
    for lead in ("Input should be ", "Value error, "):
        if message.startswith(lead):
            return f"expected {message[len(lead):]}"
    return f"expected {message[:1].lower()}{message[1:]}"


def _field_info(loc: tuple[str, ...]) -> Any:
    model: Any = Settings
    info = None
    for part in loc:
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return info if part.isdigit() else None
        info = fields[part]
        model = info.annotation
    return info


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def dump_settings(settings: Settings) -> dict[str, Any]:
    """Plain, YAML-safe dict of the resolved settings (secrets are never part of Settings)."""
    return settings.model_dump(mode="json")
