"""The HTML page of `coin report`: one self-contained file (styles and SVG charts inline, no
external URL). Each figure cell carries `data-key`/`data-value` with the JSON value it shows, so the
page can be checked against summary.json / evaluation.json."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1280px;
color:#1d1d1f;background:#fff;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666;margin:0 0 16px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:8px}
.card{border:1px solid #e3e3e3;border-radius:6px;padding:8px 10px;background:#fafafa}
.card .k{font-size:11px;color:#666;text-transform:uppercase;letter-spacing:.03em}
.card .v{font-size:18px;font-weight:600;margin-top:2px}
.pos{color:#1a7f37}.neg{color:#c62828}
table{border-collapse:collapse;font-size:13px;margin:4px 0}
td,th{border:1px solid #e3e3e3;padding:4px 8px;text-align:right}th{background:#f3f3f3}
td.l,th.l{text-align:left}
.chart svg{width:100%;height:auto}
pre{background:#f6f6f6;padding:10px;font-size:12px;overflow:auto;max-height:480px}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;font-weight:600;font-size:13px}
.ok{background:#dff3e4;color:#1a7f37}.bad{background:#fde2e1;color:#c62828}
"""

PERCENT = {"total_return", "annualised_return", "max_drawdown", "exposure", "buy_and_hold_return",
           "ACTIVE", "REDUCING", "HALTED", "time_in_state"}


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if key in PERCENT:
            return f"{value * 100:,.2f}%"
        return f"{value:,.4f}" if abs(value) < 1000 else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _sign(key: str, value: Any) -> str:
    if key in ("total_return", "annualised_return", "sharpe", "sortino") and isinstance(value, float):
        return " pos" if value > 0 else (" neg" if value < 0 else "")
    return ""


def figure_attrs(key: str, value: Any) -> str:
    return f'data-key="{esc(key)}" data-value="{esc(json.dumps(value))}"'


def cards(title: str, figures: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    items = []
    for key, label in labels.items():
        if key not in figures:
            continue
        value = figures[key]
        items.append(f'<div class="card"><div class="k">{esc(label)}</div>'
                     f'<div class="v{_sign(key, value)}" {figure_attrs(key, value)}>{esc(fmt(key, value))}</div></div>')
    return f'<section id="figures"><h2>{esc(title)}</h2><div class="cards">{"".join(items)}</div></section>'


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], keys: Sequence[str] | None = None,
          prefix: str = "") -> str:
    """A table; with `keys`, each cell gets data-key `<prefix><row label>.<key>` for checking."""
    head = "".join(f'<th class="{"l" if i == 0 else ""}">{esc(c)}</th>' for i, c in enumerate(columns))
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            key = keys[i] if keys and i < len(keys) else ""
            attrs = f" {figure_attrs(f'{prefix}{row[0]}.{key}', value)}" if keys and i else ""
            cells.append(f'<td class="{"l" if i == 0 else ""}"{attrs}>{esc(fmt(key, value))}</td>')
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def monthly_table(monthly: Mapping[str, float]) -> str:
    """Years as rows, months as columns, the year's compounded return last."""
    years: dict[str, dict[int, float]] = {}
    for ym, r in monthly.items():
        year, month = ym.split("-")
        years.setdefault(year, {})[int(month)] = r
    cols = ["year", *(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]), "year"]
    rows = []
    for year, months in sorted(years.items()):
        total = 1.0
        cells = [f'<td class="l">{year}</td>']
        for m in range(1, 13):
            if m in months:
                r = months[m]
                total *= 1 + r
                cls = "pos" if r > 0 else ("neg" if r < 0 else "")
                cells.append(f'<td class="{cls}" {figure_attrs(f"monthly.{year}-{m:02d}", r)}>{r * 100:.2f}%</td>')
            else:
                cells.append("<td></td>")
        cells.append(f"<td><b>{(total - 1) * 100:.2f}%</b></td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    head = "".join(f"<th>{c}</th>" for c in cols)
    return (f'<section id="monthly"><h2>Monthly returns</h2><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></section>")


_XML_HEAD = re.compile(r"^\s*<\?xml[^>]*>\s*(<!DOCTYPE[^>]*>\s*)?", re.S)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)   # RDF with creativecommons/purl URLs


def inline_svg(svg_text: str) -> str:
    """An SVG file's text made embeddable: the XML declaration, the DOCTYPE and the RDF metadata
    (which carry URLs) dropped; the xmlns attributes stay (namespace names, never fetched)."""
    return _METADATA.sub("", _XML_HEAD.sub("", svg_text))


def chart(section_id: str, title: str, svg_text: str | None) -> str:
    body = inline_svg(svg_text) if svg_text else "<p>no chart in this run folder</p>"
    return f'<section id="{esc(section_id)}"><h2>{esc(title)}</h2><div class="chart">{body}</div></section>'


def section(section_id: str, title: str, body: str) -> str:
    return f'<section id="{esc(section_id)}"><h2>{esc(title)}</h2>{body}</section>'


def settings_section(config_text: str | None) -> str:
    return section("settings", "Settings (config.yaml, secrets redacted)",
                   f"<pre>{esc(config_text or 'config.yaml missing')}</pre>")


def badge(text: str, good: bool) -> str:
    return f'<span class="badge {"ok" if good else "bad"}">{esc(text)}</span>'


def document(title: str, subtitle: str, sections: Sequence[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width\"><title>{esc(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{esc(title)}</h1><p class=\"sub\">{esc(subtitle)}</p>"
            + "".join(sections) + "</body></html>\n")
