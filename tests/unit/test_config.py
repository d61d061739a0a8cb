"""Settings: defaults, YAML, environment and flag precedence, clear errors, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from coin_cli.config import Secrets, Settings, load_settings, redact
from coin_cli.errors import ConfigError, ExitCode

REPO = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_default_yaml_equals_builtin_defaults() -> None:
    assert load_settings(REPO / "configs" / "default.yaml", env={}) == Settings()


def test_default_yaml_documents_every_key() -> None:
    sections: dict[str, dict[str, str]] = {}
    current = None
    for line in (REPO / "configs" / "default.yaml").read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            current = sections.setdefault(line.split(":")[0], {})
        elif line.startswith("  ") and ":" in line and current is not None:
            current[line.strip().split(":")[0]] = line
    for section, field in Settings.model_fields.items():
        assert section in sections, f"section {section} missing from default.yaml"
        for key in field.annotation.model_fields:
            line = sections[section].get(key)
            assert line is not None, f"{section}.{key} missing from default.yaml"
            assert "#" in line, f"{section}.{key} has no comment"


def test_precedence_defaults_yaml_env_flags(workdir: Path) -> None:
    cfg = write(workdir / "c.yaml", "data:\n  symbol: ETHUSDT\n  interval: 5m\nrisk:\n  max_drawdown: 0.3\n")
    env = {"COIN_DATA__SYMBOL": "SOLUSDT", "COIN_RISK__MAX_DRAWDOWN": "0.25"}
    s = load_settings(cfg, env=env, overrides={"data.symbol": ("XRPUSDT", "--symbol")})
    assert s.data.symbol == "XRPUSDT"          # flag beats env
    assert s.risk.max_drawdown == 0.25         # env beats YAML
    assert s.data.interval == "5m"             # YAML beats defaults
    assert s.env.fee_bps == Settings().env.fee_bps
    s2 = load_settings(cfg, env=env, overrides={"data.symbol": (None, "--symbol")})
    assert s2.data.symbol == "SOLUSDT"         # a flag not given changes nothing


def test_missing_file(workdir: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: config file not found"):
        load_settings(workdir / "nope.yaml", env={})


def test_yaml_syntax_error_names_line(workdir: Path) -> None:
    cfg = write(workdir / "bad.yaml", "data:\n  symbol: [BTC\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: line \d+, column \d+: YAML syntax error"):
        load_settings(cfg, env={})


def test_unknown_key_is_an_error(workdir: Path) -> None:
    cfg = write(workdir / "typo.yaml", "risk:\n  max_drawdwn: 0.1\n")
    with pytest.raises(ConfigError, match=r"typo\.yaml: risk\.max_drawdwn: unknown key"):
        load_settings(cfg, env={})


def test_unknown_section_is_an_error(workdir: Path) -> None:
    cfg = write(workdir / "typo.yaml", "riks:\n  max_drawdown: 0.1\n")
    with pytest.raises(ConfigError, match=r"riks: unknown key"):
        load_settings(cfg, env={})


def test_wrong_type_message_names_file_key_expectation_and_value(workdir: Path) -> None:
    cfg = write(workdir / "x.yaml", "risk:\n  max_drawdown: abc\n")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, env={})
    assert str(info.value) == f"{cfg}: risk.max_drawdown: expected a number between 0 and 1, got 'abc'"
    assert info.value.exit_code == ExitCode.USAGE


def test_out_of_range_and_choice_messages(workdir: Path) -> None:
    with pytest.raises(ConfigError, match=r"COIN_RISK__MAX_DRAWDOWN: risk\.max_drawdown: expected a number between"):
        load_settings(None, env={"COIN_RISK__MAX_DRAWDOWN": "1.5"})
    with pytest.raises(ConfigError, match=r"--mode: trade\.mode: expected one of 'replay', 'paper', 'live'"):
        load_settings(None, env={}, overrides={"trade.mode": ("papr", "--mode")})


@pytest.mark.parametrize("symbol", ["", "../../etc", "..", "A B", "BTC/USDT", "X" * 21])
def test_symbols_name_folders_so_only_symbol_shapes_pass(symbol: str) -> None:
    with pytest.raises(ConfigError, match=r"--symbol: data\.symbol: expected a Binance symbol such as BTCUSDT"):
        load_settings(None, env={}, overrides={"data.symbol": (symbol, "--symbol")})


def test_symbols_are_upper_cased_and_the_exchange_is_a_plain_name() -> None:
    assert load_settings(None, env={"COIN_DATA__SYMBOL": "1000satsusdt"}).data.symbol == "1000SATSUSDT"
    with pytest.raises(ConfigError, match=r"COIN_DATA__EXCHANGE: data\.exchange: expected a lowercase name"):
        load_settings(None, env={"COIN_DATA__EXCHANGE": "../x"})


def test_a_file_where_a_folder_goes_is_named(workdir: Path) -> None:
    (workdir / "afile").write_text("x")
    with pytest.raises(ConfigError, match=r"^--data-dir: paths\.data_dir: expected a folder \(this path is a file\), "
                                          r"got 'afile'$"):
        load_settings(None, env={}, overrides={"paths.data_dir": (Path("afile"), "--data-dir")})
    assert load_settings(None, env={}, overrides={"paths.runs_dir": (Path("new"), "--runs-dir")}).paths.runs_dir


def test_env_with_unknown_key_names_the_variable(workdir: Path) -> None:
    with pytest.raises(ConfigError, match=r"COIN_DATA__SYMBL: data\.symbl: unknown key"):
        load_settings(None, env={"COIN_DATA__SYMBL": "X"})


def test_top_level_must_be_a_mapping(workdir: Path) -> None:
    cfg = write(workdir / "list.yaml", "- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping of sections"):
        load_settings(cfg, env={})


def test_secrets_only_from_env_and_redacted() -> None:
    env = {"TELEGRAM_BOT_TOKEN": "123456:ABCDEF-secret", "BINANCE_API_SECRET": "s3cr3t-value"}
    secrets = Secrets.from_env(env)
    assert secrets.telegram_bot_token == "123456:ABCDEF-secret"
    text = "url https://api/bot123456:ABCDEF-secret/sendMessage failed; key s3cr3t-value"
    assert redact(text, secrets) == "url https://api/bot***/sendMessage failed; key ***"
    assert "secret" not in Settings().model_dump_json().lower().replace("api_secret", "")


def test_any_telegram_bot_token_is_redacted_by_its_shape_and_nothing_else() -> None:
    other = "110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"  # not configured anywhere
    text = (f"token {other}; url https://api.telegram.org/bot{other.replace(':', '%3A')}/getMe; "
            "at 2020-12-21 14:05:00, bar 1608559500000:closed, ratio 3:2, id 123456:short")
    assert redact(text, Secrets()) == ("token ***; url https://api.telegram.org/bot***/getMe; "
                                       "at 2020-12-21 14:05:00, bar 1608559500000:closed, ratio 3:2, id 123456:short")


def test_a_bad_value_or_unknown_section_names_the_variable() -> None:
    with pytest.raises(ConfigError) as unknown:
        load_settings(None, env={"COIN_FOO__BAR": "1"})
    assert str(unknown.value).startswith("COIN_FOO__BAR: foo: unknown key")
    with pytest.raises(ConfigError) as bad:
        load_settings(None, env={"COIN_DATA__INTERVAL": "7m"})
    assert str(bad.value).startswith("COIN_DATA__INTERVAL: data.interval: expected a Binance kline interval")
    assert load_settings(None, env={"COIN_DATA__INTERVAL": "5m"}).data.interval == "5m"
