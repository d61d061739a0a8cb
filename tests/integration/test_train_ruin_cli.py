"""`coin train` when a policy hits the ruin stop during evaluation (issue 11 item 1): every policy
is compared over the same bars, the ruin is a column and (for the agent) a promotion reason, and
the model and train_manifest.json are written whatever the evaluation finds. The candles are a
crafted series (a calm rise, then a steady fall through validation and test) that ruins
buy-and-hold on both splits; no ../shared needed. A run shorter than train.eval_freq still writes a
training curve (item 13)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

HOUR_MS = 3_600_000


def _write_crash(path: Path, rows: int = 2400, fall_from: int = 1500) -> None:
    price, lines = 20_000.0, ["open_time_ms,open,high,low,close,volume"]
    for i in range(rows):
        wiggle = 1.004 if i % 2 else 0.997          # some variance, so every Sharpe is defined
        step = wiggle * (1.0003 if i < fall_from else 0.992)
        close = price * step
        lines.append(f"{1_600_000_000_000 // HOUR_MS * HOUR_MS + i * HOUR_MS},{price:.6f},"
                     f"{max(price, close) * 1.001:.6f},{min(price, close) * 0.999:.6f},{close:.6f},10.0")
        price = close
    path.write_text("\n".join(lines) + "\n")


def test_train_survives_a_ruined_policy_and_reports_it(coin, workdir: Path) -> None:
    _write_crash(workdir / "crash.csv")
    imported = coin("data", "import", str(workdir / "crash.csv"), "--symbol", "BTCUSDT", "--interval", "1h")
    assert imported.returncode == 0, imported.stderr
    # train.eval_freq (10,000) is far above the run's steps: the curve still gets its final point
    result = coin("train", "--interval", "1h", "--timesteps", "512", "--json", env={"COIN_TRAIN__N_ENVS": "1"})
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    run = workdir / "runs" / summary["run_id"]
    assert (run / "model.zip").is_file() and (run / "train_manifest.json").is_file()
    evaluation = json.loads((run / "evaluation.json").read_text())
    for split in ("val", "test"):
        metrics = evaluation[split]["metrics"]
        assert metrics["buyhold"]["ruined"] is True and metrics["flat"]["ruined"] is False
        assert len({m["bars"] for m in metrics.values()}) == 1           # the same bars for every policy
        # buy-and-hold stays at its ruin equity: below half the start, never back above it
        assert metrics["buyhold"]["final_equity"] < 0.5 * 10_000
    rows = list(csv.DictReader((run / "evaluation.csv").open()))
    assert {r["ruined"] for r in rows if r["policy"] == "buyhold"} == {"True"}
    curve = list(csv.DictReader((run / "training_curve.csv").open()))
    assert len(curve) == 1 and int(curve[0]["timesteps"]) >= 512 and curve[0]["val_reward"] not in ("", "nan")
    manifest = json.loads((run / "train_manifest.json").read_text())
    agent_ruined = [s for s in ("val", "test") if evaluation[s]["metrics"]["agent"]["ruined"]]
    for split in agent_ruined:
        assert any(r.startswith(f"{split}: the agent hit the ruin stop") for r in manifest["reasons"])
    if agent_ruined:
        assert manifest["status"] == "not_promoted"
