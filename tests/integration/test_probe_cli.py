"""`coin train --probe` end to end: fresh clone (bootstrap), an imported real file, blocked cases,
and no torch / stable_baselines3 import."""

from __future__ import annotations

import csv
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.conftest import TEST_DATA, clean_env, last_line

PROBE_FILES = {"config.yaml", "meta.json", "data_manifest.json", "feature_manifest.json", "dataset_summary.json",
               "train_probe_summary.json", "train_manifest.json", "train_probe/trace.csv",
               "train_probe/reward_equity.svg"}


def files_of(run_dir: Path) -> set[str]:
    return {str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()}


def load(run_dir: Path, name: str) -> dict:
    return json.loads((run_dir / name).read_text())


def test_fresh_clone_probe_is_ready_and_writes_exactly_the_files(coin, workdir: Path) -> None:
    result = coin("train", "--probe")
    assert result.returncode == 0, result.stderr
    run_id = last_line(result.stdout)
    assert "-train-" in run_id and "status" in result.stdout and "ready" in result.stdout
    run_dir = workdir / "runs" / run_id
    assert files_of(run_dir) == PROBE_FILES

    data = load(run_dir, "data_manifest.json")
    assert data["bootstrap_generated"] is True and data["source"] == "bootstrap" and data["rows"] == 20_000
    assert data["coverage"]["first"] and data["coverage"]["last"] and data["gaps"]["events"] == 0
    assert (workdir / "data" / "binance" / "BTCUSDT" / "1h.parquet").is_file()  # saved to the store

    features = load(run_dir, "feature_manifest.json")
    assert features["warmup"] == 168 and len(features["implementation_hash"]) == 64
    assert "vol_24" in features["names"]

    dataset = load(run_dir, "dataset_summary.json")
    splits = dataset["splits"]
    assert splits["train"]["end"] < splits["val"]["start"] < splits["val"]["end"] < splits["test"]["start"]
    assert splits["test"]["end"] == 20_000
    assert set(dataset["nan_ratio_after_warmup"]) == set(features["names"])
    assert max(dataset["nan_ratio_after_warmup"].values()) == 0.0

    manifest = load(run_dir, "train_manifest.json")
    assert manifest["status"] == "ready" and "reasons" not in manifest
    assert manifest["parity"]["passed"] and manifest["env_check"]["status"] == "passed"
    probe = load(run_dir, "train_probe_summary.json")
    assert manifest["probe"] == probe
    for key in ("steps", "total_reward", "final_equity", "max_drawdown", "trades", "fees"):
        assert key in probe

    with open(run_dir / "train_probe" / "trace.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == probe["steps"] > 19_000
    assert float(rows[-1]["equity"]) == probe["final_equity"]
    assert sum(float(r["fee"]) for r in rows) == pytest.approx(probe["fees"])
    assert {"open_time", "price", "action", "target", "position", "cash", "equity", "fee", "reward"} <= set(rows[0])

    svg = ET.parse(run_dir / "train_probe" / "reward_equity.svg").getroot()
    texts = " ".join(t.text or "" for t in svg.iter("{http://www.w3.org/2000/svg}text"))
    for label in ("equity (quote currency)", "cumulative reward", "time (UTC)", "VolTarget", "buy and hold"):
        assert label in texts
    lines = [g.get("id") or "" for g in svg.iter("{http://www.w3.org/2000/svg}g")]   # matplotlib gids
    assert sorted(i for i in lines if i.startswith(("line-", "second-"))) == [
        "line-VolTarget", "line-buy and hold", "second-VolTarget", "second-buy and hold"]

    meta = load(run_dir, "meta.json")
    assert meta["status"] == "ok" and meta["exit_code"] == 0


def test_probe_on_an_imported_real_file_with_json(coin, workdir: Path) -> None:
    imported = coin("data", "import", str(TEST_DATA / "binance_BTCUSDT_5m.csv"), "--symbol", "BTCUSDT",
                    "--interval", "5m")
    assert imported.returncode == 0, imported.stderr
    result = coin("train", "--probe", "--interval", "5m", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "ready" and summary["interval"] == "5m"
    assert summary["bootstrap_generated"] is False and summary["rows"] == 7_142
    assert summary["parity_bit_identical"] is True
    run_dir = workdir / "runs" / summary["run_id"]
    data = load(run_dir, "data_manifest.json")
    assert data["source"] != "bootstrap" and data["gaps"]["events"] == 2 and data["gaps"]["missing_bars"] == 58
    assert data["coverage"]["first"].startswith("2020-12-01")


def test_too_few_rows_and_a_long_window_block_with_reasons(coin, workdir: Path) -> None:
    result = coin("train", "--probe", env={"COIN_DATA__BOOTSTRAP_ROWS": "600",
                                           "COIN_FEATURES__VOL_WINDOWS": "[24, 700]"})
    assert result.returncode == 5, result.stderr
    run_dir = workdir / "runs" / last_line(result.stdout)
    assert files_of(run_dir) == PROBE_FILES
    manifest = load(run_dir, "train_manifest.json")
    assert manifest["status"] == "blocked"
    reasons = " | ".join(manifest["reasons"])
    assert "too few candles: 600 < train.min_rows 1000" in reasons
    assert "too few rows for the splits" in reasons
    assert "NaN ratio after warm-up over train.max_nan_ratio 0.01: " in reasons and "vol_700 100.0%" in reasons
    assert "blocked because" in result.stdout and "too few candles" in result.stdout
    meta = load(run_dir, "meta.json")
    assert meta["status"] == "blocked" and meta["exit_code"] == 5


def test_coarse_tick_blocks_and_json_says_why(coin, workdir: Path) -> None:
    result = coin("train", "--probe", "--json", env={"COIN_ENV__TICK_SIZE": "500"})
    assert result.returncode == 5
    summary = json.loads(result.stdout)
    assert summary["status"] == "blocked"
    assert any("env.tick_size 500 is too coarse" in r for r in summary["reasons"])


def test_probe_never_imports_torch_or_sb3(workdir: Path) -> None:
    import subprocess

    code = ("import sys\nfrom coin_cli.app import main\nsys.argv = ['coin', 'train', '--probe', '--json']\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'stable_baselines3'))\n"
            "print('HEAVY', bad, code, file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=workdir, env=clean_env(), capture_output=True,
                            text=True, timeout=120)
    assert "HEAVY [] 0" in result.stderr, result.stderr

