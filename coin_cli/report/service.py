"""Services behind the charts and `coin report`. Never imports typer or rich.

`finish_trade_run` is what the runtime calls at the end of every `coin trade` run (an interrupted
one too): it computes the `performance` figures of summary.json and draws equity.svg.
`build_report` writes the HTML page of any run folder: trade, train, probe or sweep."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from coin_cli.errors import DataError, UsageError
from coin_cli.report import page
from coin_cli.report.figures import TradeSeries, read_series, trade_figures

TRADE_LABELS = {
    "total_return": "total return", "annualised_return": "annual return", "sharpe": "Sharpe",
    "sortino": "Sortino", "max_drawdown": "max drawdown", "max_drawdown_peak": "drawdown peak",
    "max_drawdown_trough": "drawdown trough", "max_drawdown_recovered": "recovered",
    "trades": "trades", "fees": "fees (quote)", "turnover": "turnover (x mean equity)",
    "exposure": "exposure (mean |weight|)", "buy_and_hold_return": "buy and hold return",
    "bars": "bars", "first_bar": "first bar", "last_bar": "last bar",
}
METRIC_COLUMNS = ("total_return", "annualised_return", "sharpe", "sortino", "max_drawdown", "turnover",
                  "fees", "trades", "exposure", "final_equity")


def finish_trade_run(run_dir: Path, summary: dict[str, Any], alerts: dict[str, int] | None = None) -> dict[str, Any]:
    """The performance figures of a finished (or stopped) trade run, and its equity.svg."""
    from coin_cli.data.schema import interval_ms

    series = read_series(run_dir / "metrics.jsonl")
    figures = trade_figures(series, summary, interval_ms(summary["interval"]))
    figures["alerts_raised"] = dict(alerts or {})
    draw_trade_chart(series, summary, run_dir / "equity.svg")
    return figures


def draw_trade_chart(series: TradeSeries, summary: dict[str, Any], path: Path) -> Path:
    from coin_cli.report.charts import trade_chart

    title = (f"{summary.get('symbol')} {summary.get('interval')} {summary.get('mode')} - "
             f"{summary.get('policy')}: equity vs buy and hold, drawdown, weight")
    return trade_chart(series, path, title)


def build_report(runs_dir: Path, run_id: str, out: Path) -> dict[str, Any]:
    folder = runs_dir / run_id
    if not run_id or "/" in run_id or not folder.is_dir():
        raise UsageError(f"{folder}: no such run folder (give a run_id from {runs_dir})")
    meta = _read_json(folder / "meta.json") or {}
    kind = run_kind(folder)
    builder = {"trade": _trade_page, "train": _train_page, "probe": _probe_page, "sweep": _sweep_page}[kind]
    text = builder(folder, meta)
    from coin_cli.fsio import atomic_write_text

    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, text)
    return {"report": str(out), "kind": kind, "source_run": run_id, "bytes": len(text.encode())}


def run_kind(folder: Path) -> str:
    if (folder / "sweep.json").is_file():
        return "sweep"
    if (folder / "evaluation.json").is_file():
        return "train"
    if (folder / "train_probe_summary.json").is_file():
        return "probe"
    if (folder / "summary.json").is_file() and (folder / "metrics.jsonl").is_file():
        return "trade"
    raise DataError(f"{folder}: not a trade, train, probe or sweep run (no summary.json + metrics.jsonl, "
                    "evaluation.json, train_probe_summary.json or sweep.json)")


def _read_json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable JSON ({exc})") from exc


def _read_text(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.is_file() else None


def _subtitle(folder: Path, meta: dict[str, Any]) -> str:
    return (f"run {folder.name} · status {meta.get('status', '?')} · exit {meta.get('exit_code', '?')} · "
            f"started {meta.get('started', '?')}")


def _trade_page(folder: Path, meta: dict[str, Any]) -> str:
    from coin_cli.data.schema import interval_ms

    summary = _read_json(folder / "summary.json") or {}
    perf = summary.get("performance")
    series: TradeSeries | None = None
    if perf is None:   # a run from before the figures were stored: the same function, now
        series = read_series(folder / "metrics.jsonl")
        perf = trade_figures(series, summary, interval_ms(summary["interval"]))
    svg = _read_text(folder / "equity.svg")
    if svg is None:
        series = series or read_series(folder / "metrics.jsonl")
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            svg = draw_trade_chart(series, summary, Path(tmp) / "equity.svg").read_text(encoding="utf-8")
    risk_rows = [(state, share) for state, share in perf.get("time_in_state", {}).items()]
    alerts = perf.get("alerts_raised", {})
    changes = perf.get("risk_changes", [])
    alert_body = (page.table(["alert", "count"], sorted(alerts.items()), ["code", "count"], "alerts.")
                  if alerts else "<p>no alerts raised</p>")
    if changes:
        alert_body += "<h3>risk state changes</h3>" + page.table(
            ["bar", "state", "reason"], [(c["bar"], c["state"], c["reason"]) for c in changes])
    run_rows = [(k, summary.get(k)) for k in ("symbol", "interval", "mode", "policy", "broker", "initial_cash",
                                               "final_equity", "risk_state", "risk_reason", "stopped_by",
                                               "state_file", "data_generated") if k in summary]
    title = (f"coin trade {summary.get('mode', '')}: {summary.get('symbol', '')} {summary.get('interval', '')}"
             f" · {summary.get('policy', '')}")
    sections = [
        page.cards("Key figures", perf, TRADE_LABELS),
        page.chart("chart-equity", "Equity, drawdown and position", svg),
        page.section("risk", "Time in each risk state",
                     page.table(["state", "share of bars"], risk_rows, ["state", "time_in_state"], "time_in_state.")),
        page.monthly_table(perf.get("monthly_returns", {})),
        page.section("alerts", "Alerts raised", alert_body),
        page.section("run", "Run", page.table(["field", "value"], run_rows)),
        page.settings_section(_read_text(folder / "config.yaml")),
    ]
    return page.document(title, _subtitle(folder, meta), sections)


def _metrics_table(split_result: dict[str, Any], split: str) -> str:
    rows = []
    for name, m in split_result.get("metrics", {}).items():
        rows.append([name, *(m.get(c) for c in METRIC_COLUMNS)])
    return page.table(["policy", *METRIC_COLUMNS], rows, ["policy", *METRIC_COLUMNS], f"{split}.")


def _train_page(folder: Path, meta: dict[str, Any]) -> str:
    evaluation = _read_json(folder / "evaluation.json") or {}
    manifest = _read_json(folder / "train_manifest.json") or {}
    promotion = evaluation.get("promotion", {})
    status = promotion.get("status", manifest.get("status", "?"))
    checks = promotion.get("checks", {})
    check_rows = [(split, c.get("agent_sharpe"), c.get("best_baseline"), c.get("best_baseline_sharpe"),
                   c.get("sharpe_diff"), c.get("ci_low"), c.get("ci_high"), c.get("passed"))
                  for split, c in checks.items()]
    promo = (f"<p>{page.badge(status, status == 'promoted')} margin {page.esc(promotion.get('margin'))}</p>"
             + page.table(["split", "agent Sharpe", "best baseline", "its Sharpe", "Sharpe diff",
                           "95% CI low", "95% CI high", "passed"], check_rows,
                          ["split", "agent_sharpe", "best_baseline", "best_baseline_sharpe", "sharpe_diff",
                           "ci_low", "ci_high", "passed"], "promotion.")
             + "".join(f"<p>{page.esc(r)}</p>" for r in promotion.get("reasons", [])))
    sections = [page.section("promotion", "Promotion checks (agent vs best baseline, after fees)", promo)]
    for split in ("val", "test"):
        if split in evaluation:
            sections.append(page.section(f"figures-{split}", f"Key figures: {split} split",
                                         _metrics_table(evaluation[split], split)))
    sections.append(page.chart("chart-equity", "Test split: agent and baselines",
                               _read_text(folder / "equity_test.svg")))
    sections.append(page.chart("chart-curve", "Training curve", _read_text(folder / "training_curve.svg")))
    folds = evaluation.get("folds", [])
    if folds:
        keys = list(dict.fromkeys(k for f in folds for k in f))
        rows = [[_span(f.get(k)) for k in keys] for f in folds]
        sections.append(page.section("folds", "Folds (rows of the candle table)", page.table(keys, rows)))
    sections.append(page.settings_section(_read_text(folder / "config.yaml")))
    return page.document(f"coin train: {manifest.get('algo', meta.get('command', ''))} · {status}",
                         _subtitle(folder, meta), sections)


def _span(value: Any) -> Any:
    if isinstance(value, dict) and {"start", "end"} <= value.keys():
        return f"{value['start']}-{value['end']} ({value.get('bars', value['end'] - value['start'])} bars)"
    return value


def _probe_page(folder: Path, meta: dict[str, Any]) -> str:
    summary = _read_json(folder / "train_probe_summary.json") or {}
    manifest = _read_json(folder / "train_manifest.json") or {}
    status = manifest.get("status", "?")
    reasons = "".join(f"<p>{page.esc(r)}</p>" for r in manifest.get("reasons", []))
    flat = {k: v for k, v in summary.items() if not isinstance(v, dict | list)}
    sections = [
        page.section("status", "Readiness", f"<p>{page.badge(status, status == 'ready')}</p>{reasons}"),
        page.cards("Key figures (VolTarget probe rollout)", flat, {k: k.replace("_", " ") for k in flat}),
        page.chart("chart-equity", "VolTarget vs buy and hold",
                   _read_text(folder / "train_probe" / "reward_equity.svg")),
    ]
    dataset = _read_json(folder / "dataset_summary.json")
    if dataset:
        sections.append(page.section("dataset", "Dataset", f"<pre>{page.esc(json.dumps(dataset, indent=2))}</pre>"))
    sections.append(page.settings_section(_read_text(folder / "config.yaml")))
    return page.document(f"coin train --probe · {status}", _subtitle(folder, meta), sections)


def _sweep_page(folder: Path, meta: dict[str, Any]) -> str:
    """A sweep run (`coin train --sweep`, not built yet): sweep.json holds `trials`, a list of
    objects (parameters and metrics); every key becomes a column, best first if `metric` is set."""
    sweep = _read_json(folder / "sweep.json") or {}
    trials = list(sweep.get("trials", []))
    metric = sweep.get("metric")
    if metric:
        trials.sort(key=lambda t: (t.get(metric) is None, -(t.get(metric) or 0.0)))
    keys = list(dict.fromkeys(k for t in trials for k in t))
    rows = [[t.get(k) for k in keys] for t in trials]
    body = page.table(keys, rows, keys, "trial.") if trials else "<p>no trials</p>"
    sections = [page.section("trials", f"Trials ({len(trials)}){f', best {metric} first' if metric else ''}", body),
                page.settings_section(_read_text(folder / "config.yaml"))]
    return page.document("coin train --sweep", _subtitle(folder, meta), sections)


def read_curve(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def open_in_browser(path: Path) -> bool:
    """Open the page with webbrowser only when there is a display (never a text browser on a
    server); False when there is none."""
    import os
    import sys
    import webbrowser

    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    return bool(webbrowser.open(path.resolve().as_uri()))
