"""coin's own YAML fast paths agree with PyYAML: environment values and the config.yaml writer."""

from __future__ import annotations

import math
import random

import pytest
import yaml

from coin_cli import yamltext
from coin_cli.config import Settings, dump_settings

TRICKY = ["", "~", "null", "Null", "NULL", "yes", "No", "ON", "off", "True", "false", "y", "n", "a:", "a:b",
          "a: b", "http://127.0.0.1:8081/bot", "wss://stream.binance.com:9443/", "1", "-1", "+1", "01", "007",
          "0x1f", "0o17", "0b101", "1_000", "1.5", "-0.25", "1.", ".5", "1e3", "1.0e+3", "1e-05", "2024-01-01",
          "12:30", "1:20:30", ".inf", "-.inf", ".nan", "[1, 2]", "[a, b]", "{a: 1}", "#x", "a #b", "a#b", "'q'",
          '"q"', "@x", "%x", "&a", "*a", "!x", "|", ">", "-", "- a", "?", "? a", "a?b", "=", "<<", "BTCUSDT",
          "ETH-USDT", "path/to/x.yaml", "a b", " a", "a ", "é", "a\tb", "a,b", "a~b", "a@b%c+d", "ABC_def.1"]


def _pyyaml_value(raw: str) -> object:
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def _random_strings(n: int, seed: int = 7) -> list[str]:
    alphabet = "aZy0189._-:/@%+~ #,[]{}'\"!&*|>?=<\\\te\u00e9"
    rng = random.Random(seed)
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8))) for _ in range(n)]


@pytest.mark.parametrize("raw", TRICKY)
def test_parse_scalar_equals_pyyaml_on_tricky_values(raw: str) -> None:
    got, want = yamltext.parse_scalar(raw), _pyyaml_value(raw)
    assert type(got) is type(want) and (got == want or (isinstance(got, float) and math.isnan(got)))


def test_parse_scalar_equals_pyyaml_on_random_values() -> None:
    for raw in _random_strings(5000):
        got, want = yamltext.parse_scalar(raw), _pyyaml_value(raw)
        assert type(got) is type(want) and got == want, raw


def test_plain_strings_and_numbers_do_not_import_pyyaml() -> None:
    import subprocess
    import sys

    code = ("import sys; from coin_cli import yamltext as y; "
            "assert y.parse_scalar('http://127.0.0.1:1/bot') == 'http://127.0.0.1:1/bot'; "
            "assert y.parse_scalar('0.3') == 0.3 and y.parse_scalar('-5') == -5; "
            "from coin_cli.config import Settings, dump_settings; y.dump(dump_settings(Settings())); "
            "print('yaml' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_dump_of_the_settings_reads_back_equal() -> None:
    data = dump_settings(Settings())
    text = yamltext.dump(data)
    assert yaml.safe_load(text) == data
    assert "runs_dir: runs\n" in text  # block style, plain where YAML allows


@pytest.mark.parametrize("value", [0.0, -0.0, 1e-05, 1e16, 1.5e-07, 123456789.125, 3, -7, True, False, None,
                                   math.inf, -math.inf, [], [1, 2.5, "a b"], "", "a: b", 'q"uote\\', "é ü",
                                   "line\nbreak", "\x85", "yes", "12", "2024-01-01", {"k": 1}, {}, [{"a": 1}]])
def test_dump_reads_back_equal_for_any_value(value: object) -> None:
    data = {"section": {"key": value, "other": "x"}, "empty": {}}
    assert yaml.safe_load(yamltext.dump(data)) == data


def test_dump_reads_back_equal_for_random_strings() -> None:
    strings = _random_strings(2000, seed=11)
    data = {"s": {f"k{i}": s for i, s in enumerate(strings)}, "lists": {"l": strings[:50]}}
    assert yaml.safe_load(yamltext.dump(data)) == data


def test_load_reports_where_the_syntax_is_wrong() -> None:
    with pytest.raises(yamltext.YAMLSyntaxError) as info:
        yamltext.load("data:\n  symbol: [BTC\n")
    assert info.value.where == " line 3, column 1"
