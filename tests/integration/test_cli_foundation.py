"""The CLI contract of DESIGN.md §2 through the real `coin` command (subprocess and CliRunner)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from coin_cli import __version__
from coin_cli.app import app
from tests.conftest import clean_env, last_line

RUN_ID = re.compile(r"^\d{8}T\d{6}Z-[a-z]+-[0-9a-f]{6}$")
HEAVY = ("torch", "stable_baselines3", "pandas", "pyarrow", "matplotlib")
TOKEN = "7777777:AAH-super-secret-token-do-not-leak"


def heavy_modules_imported(args: list[str], cwd: Path) -> set[str]:
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['coin', *{args!r}]\n"
        "try:\n    runpy.run_module('coin_cli', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=clean_env(), capture_output=True, text=True)
    marker = [ln for ln in out.stderr.splitlines() if ln.startswith("HEAVY=")]
    assert marker, out.stderr
    return {m for m in marker[-1][len("HEAVY="):].split(",") if m}


def test_help_lists_the_five_groups(coin) -> None:
    result = coin("--help")
    assert result.returncode == 0
    for group in ("data", "train", "trade", "stream", "notify"):
        assert re.search(rf"^\W*{group}\s+\S", result.stdout, re.M), f"{group} missing from help"


def test_version(coin) -> None:
    result = coin("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"coin {__version__}"


def test_light_commands_import_nothing_heavy(workdir: Path) -> None:
    for args in (["--help"], ["--version"], ["notify", "--help"]):
        assert heavy_modules_imported(args, workdir) == set(), args


def test_no_colour_when_piped(coin) -> None:
    result = coin("--help")
    assert "\x1b[" not in result.stdout and "\x1b[" not in result.stderr


def test_unknown_command_and_bad_flag_exit_2(coin) -> None:
    assert coin("nosuch").returncode == 2
    result = coin("data", "bootstrap", "--rows", "many")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("error: coin data bootstrap: ") and "--rows" in lines[0]


def test_missing_config_file_exit_2_one_line(coin, workdir: Path) -> None:
    result = coin("--config", "nope.yaml", "data", "ls")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: nope.yaml: config file not found"
    assert "Traceback" not in result.stderr


def test_a_file_in_place_of_the_data_or_runs_folder_exit_2_one_line(coin, workdir: Path) -> None:
    # It used to fail deep inside the command: "unexpected NotADirectoryError", exit 1.
    (workdir / "afile").write_text("x")
    for flag, key in (("--data-dir", "data_dir"), ("--runs-dir", "runs_dir")):
        result = coin(flag, "afile", "train", "--probe")
        assert result.returncode == 2
        assert result.stderr == f"error: {flag}: paths.{key}: expected a folder (this path is a file), got 'afile'\n"
    assert (workdir / "afile").read_text() == "x" and not (workdir / "runs").exists()


def test_bad_config_files_exit_2(coin, workdir: Path) -> None:
    cases = {
        "syntax.yaml": ("data:\n  symbol: [BTC\n", r"syntax\.yaml: line 3, column 1: YAML syntax error"),
        "unknown.yaml": ("risk:\n  max_drawdwn: 0.1\n", r"unknown\.yaml: risk\.max_drawdwn: unknown key"),
        "type.yaml": ("risk:\n  max_drawdown: abc\n",
                      r"type\.yaml: risk\.max_drawdown: expected a number between 0 and 1, got 'abc'"),
        "section.yaml": ("risk: 5\n", r"section\.yaml: risk: expected a section of `key: value` lines, got 5$"),
        "item.yaml": ("features:\n  return_horizons: [1, -4]\n",
                      r"item\.yaml: features\.return_horizons\.1: expected greater than 0, got -4$"),
        "latin1.yaml": ("risk:\n  max_drawdown: 0.2 # r\xe9duit\n",
                        r"latin1\.yaml: not UTF-8 text \(byte \d+\); save the config file as UTF-8$"),
    }
    for name, (text, pattern) in cases.items():
        (workdir / name).write_bytes(text.encode("latin-1"))
        result = coin("--config", name, "data", "ls")
        assert result.returncode == 2, (name, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and re.search(pattern, lines[0]), lines


def test_verbose_adds_traceback(coin, workdir: Path) -> None:
    (workdir / "type.yaml").write_text("risk:\n  max_drawdown: abc\n")
    assert "Traceback" in coin("-v", "--config", "type.yaml", "data", "ls").stderr


def test_default_config_file_is_picked_up(coin, workdir: Path) -> None:
    (workdir / "configs").mkdir()
    (workdir / "configs" / "default.yaml").write_text("risk:\n  max_drawdown: 7\n")
    result = coin("data", "ls")
    assert result.returncode == 2 and "configs/default.yaml: risk.max_drawdown" in result.stderr


def test_run_folder_precedence_and_redaction(coin, workdir: Path) -> None:
    (workdir / "c.yaml").write_text("data:\n  symbol: ETHUSDT\n  bootstrap_seed: 3\nrisk:\n  max_drawdown: 0.3\n")
    env = {"COIN_DATA__SYMBOL": "SOLUSDT", "COIN_RISK__MAX_DRAWDOWN": "0.25", "TELEGRAM_BOT_TOKEN": TOKEN,
           "BINANCE_API_SECRET": TOKEN + "-binance"}
    result = coin("--config", "c.yaml", "--runs-dir", "out", "data", "bootstrap", "--symbol", "XRPUSDT",
                  "--rows", "300", env=env)
    assert result.returncode == 0, result.stderr
    run_id = last_line(result.stdout)
    assert RUN_ID.match(run_id)
    run_dir = workdir / "out" / run_id
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["data"]["symbol"] == "XRPUSDT"       # flag > env
    assert config["risk"]["max_drawdown"] == 0.25      # env > YAML
    assert config["data"]["bootstrap_seed"] == 3       # YAML > default
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["status"] == "ok" and meta["exit_code"] == 0 and meta["argv"][-1] == "300"
    everything = result.stdout + result.stderr
    for path in run_dir.rglob("*"):
        if path.is_file():
            everything += path.read_text(errors="replace")
    assert TOKEN not in everything


def test_json_output_is_one_object(coin, workdir: Path) -> None:
    result = coin("data", "bootstrap", "--rows", "300", "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert RUN_ID.match(payload["run_id"])


def test_failed_command_finalises_meta_and_prints_run_id(coin, workdir: Path) -> None:
    result = coin("data", "validate", "--symbol", "NOPEUSDT", "--interval", "1m")
    assert result.returncode == 3, result.stderr
    assert result.stderr.count("error:") == 1
    run_id = last_line(result.stdout)
    if RUN_ID.match(run_id):
        meta = json.loads((workdir / "runs" / run_id / "meta.json").read_text())
        assert (meta["status"], meta["exit_code"]) == ("failed", 3)


def test_clirunner_contract(workdir: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["--version"]).output.strip() == f"coin {__version__}"
    (workdir / "x.yaml").write_text("risk:\n  max_drawdown: abc\n")
    result = runner.invoke(app, ["--config", "x.yaml", "data", "ls"])
    assert result.exit_code == 2
    ok = runner.invoke(app, ["data", "bootstrap", "--rows", "300", "--json"])
    assert ok.exit_code == 0, ok.output
    assert RUN_ID.match(json.loads(ok.stdout)["run_id"])
