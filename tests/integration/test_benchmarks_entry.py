"""`python -m benchmarks` through a real subprocess, so the entry point cannot rot: the quick CLI
section writes its table to a temporary RESULTS path (never the committed file), copies recorded
studies, and refuses an unknown section. No timing assertions: only that the figures are there
and consistent with the JSON the same run wrote."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import clean_env

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "benchmarks" / "RESULTS.md"


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "benchmarks", *args], cwd=REPO, env=clean_env(),
                          capture_output=True, text=True, timeout=240)


def test_quick_cli_section_writes_the_table_and_the_studies(tmp_path: Path) -> None:
    before = COMMITTED.read_bytes() if COMMITTED.exists() else None
    studies = tmp_path / "studies"
    studies.mkdir()
    (studies / "README.md").write_text("# not a study\n")
    (studies / "sweep-study.md").write_text("# Agent vs baselines\n\nReproduce: `coin train --sweep`\n\n"
                                            "| seed | sharpe |\n|---|---|\n| 1 | 0.42 |\n")
    results, figures_json = tmp_path / "RESULTS.md", tmp_path / "figures.json"
    out = bench("--quick", "--only", "cli", "--results", str(results), "--json", str(figures_json),
                "--studies", str(studies))
    assert out.returncode == 0, out.stderr[-3000:]
    assert (COMMITTED.read_bytes() if COMMITTED.exists() else None) == before   # the committed file untouched
    assert "coin --help" in out.stdout and "speed ratio" in out.stdout          # the rich table on screen

    data = json.loads(figures_json.read_text())
    assert data["quick"] is True
    by_name = {f["name"]: f for f in data["figures"]}
    assert {"coin --help", "coin --version", "coin notify --help"} <= set(by_name)
    text = results.read_text()
    assert text.startswith("# Benchmark results")
    assert "**Quick run**" in text and "## 5. CLI cold start" in text and "## Goals" in text
    for name in ("coin --help", "coin --version", "coin notify --help"):
        fig = by_name[name]
        assert fig["value"] > 0 and fig["peer_value"] > 0 and fig["repeats"] == 5
        assert fig["peer"] == "python -c pass"
        # the row carries the same numbers as the JSON, formatted
        assert f"| {name} | {fig['value']:.3f} s | python -c pass | {fig['peer_value']:.3f} s |" in text
    help_fig = by_name["coin --help"]
    verdict = "met" if help_fig["value"] < 0.3 else "NOT met"
    assert f"| 5. CLI cold start | coin --help | {help_fig['value']:.3f} s | < 0.3 s | {verdict} |" in text
    # the recorded study, demoted one heading level under "Recorded studies", the README left out
    assert "# Recorded studies" in text and "## Agent vs baselines" in text and "| 1 | 0.42 |" in text
    assert "not a study" not in text


def test_unknown_section_is_a_usage_error(tmp_path: Path) -> None:
    out = bench("--only", "nosuchsection", "--results", str(tmp_path / "R.md"))
    assert out.returncode == 2
    assert out.stderr.startswith("error: unknown section(s) nosuchsection")
    assert not (tmp_path / "R.md").exists()


def test_list_names_every_section() -> None:
    out = bench("--list")
    assert out.returncode == 0
    names = {line.split()[0] for line in out.stdout.splitlines() if line.strip()}
    assert {"env", "features", "replay", "train", "cli", "notify", "data", "live", "report"} <= names
