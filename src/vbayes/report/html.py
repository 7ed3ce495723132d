"""HTML building blocks of :mod:`vbayes.report`: escaping, number formatting and the page style."""

from __future__ import annotations

import html
import math
import numbers
from typing import Any

DASH = "\u2014"  # shown for NaN, None and missing cells


def escape(text: Any) -> str:
    """``text`` as HTML-escaped text (quotes included, safe inside attributes)."""
    return html.escape(str(text), quote=True)


def _scalar(value: Any) -> Any:
    """Unwrap 0-d tensors and NumPy scalars to Python numbers; anything else unchanged."""
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        try:
            return value.item()
        except (TypeError, ValueError):  # pragma: no cover - exotic array types
            return value
    return value


def is_number(value: Any) -> bool:
    """True for real numbers (ints, floats, NumPy/0-d torch scalars), false for bools and text."""
    value = _scalar(value)
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def format_number(value: float) -> str:
    """A real number at a precision fit for a results table.

    Integers as they are; floats with 4 significant digits below 1, 3 decimals up to 100,
    2 decimals up to a million, scientific notation beyond (and below 0.001); NaN as "—".
    """
    value = _scalar(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    v = float(value)
    if math.isnan(v):
        return DASH
    if math.isinf(v):
        return "\u221e" if v > 0 else "-\u221e"
    if v == 0:
        return "0"
    if v.is_integer() and abs(v) < 1e6:
        return str(int(v))
    a = abs(v)
    if a >= 1e6 or a < 1e-3:
        return f"{v:.3e}"
    if a >= 100:
        return f"{v:,.2f}"
    if a >= 1:
        return f"{v:.3f}"
    return f"{v:.4f}"


def format_cell(value: Any) -> str:
    """Text for a table cell: numbers via :func:`format_number`, ``None`` as "—"."""
    value = _scalar(value)
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "true" if value else "false"
    if is_number(value):
        return format_number(value)
    return str(value)


def format_compact(value: Any) -> str:
    """Like :func:`format_cell` but without trailing zeros (for headline numbers)."""
    text = format_cell(value)
    if is_number(value) and "." in text and "e" not in text:
        text = text.rstrip("0").rstrip(".")
    return text


def format_config_value(value: Any) -> str:
    """Exact text for a configuration value (floats in shortest round-trip form)."""
    value = _scalar(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_config_value(v) for v in value) + "]"
    if isinstance(value, dict):  # only empty dicts reach here
        return "{}"
    return str(value)


def paragraphs(text: str) -> str:
    """Escaped ``<p>`` elements, one per blank-line-separated paragraph of ``text``."""
    paras = [p.strip() for p in str(text).replace("\r\n", "\n").split("\n\n")]
    return "".join(f"<p>{escape(p)}</p>" for p in paras if p)


CSS = """
:root {
  color-scheme: light;
  --bg: #f4f6f9; --card: #ffffff; --ink: #1d2433; --muted: #5d6778; --line: #e2e6ed;
  --accent: #2f5fd0; --accent-soft: #eaf0fd; --best: #e6f6ec; --best-ink: #16693a;
  --head-a: #172239; --head-b: #26406e;
  --sans: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans",
          "Liberation Sans", "DejaVu Sans", sans-serif;
  --mono: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", "DejaVu Sans Mono", monospace;
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; background: var(--bg); color: var(--ink); font: 15px/1.55 var(--sans); }
.wrap { max-width: 1120px; margin: 0 auto; padding: 0 20px; }
.page-header { background: linear-gradient(120deg, var(--head-a), var(--head-b)); color: #fff;
  padding: 30px 0 26px; margin-bottom: 26px; }
.brand { font-size: 12px; letter-spacing: .14em; text-transform: uppercase; opacity: .72; }
h1 { margin: 6px 0 4px; font-size: 28px; line-height: 1.2; font-weight: 650; overflow-wrap: anywhere; }
.subtitle { margin: 0 0 10px; font-size: 16px; opacity: .88; overflow-wrap: anywhere; }
.meta { margin: 10px 0 0; display: flex; flex-wrap: wrap; gap: 8px; font-size: 12.5px; }
.meta span { background: rgba(255,255,255,.12); border: 1px solid rgba(255,255,255,.18);
  border-radius: 999px; padding: 2px 10px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  box-shadow: 0 1px 2px rgba(20,30,50,.05); padding: 20px 24px; margin: 0 0 22px; min-width: 0; }
h2 { margin: 0 0 14px; font-size: 20px; font-weight: 650; padding-bottom: 8px;
  border-bottom: 1px solid var(--line); overflow-wrap: anywhere; }
h3 { margin: 22px 0 10px; font-size: 16px; font-weight: 650; color: var(--ink); overflow-wrap: anywhere; }
section > h3:first-child, section > h2 + h3 { margin-top: 6px; }
p { margin: 0 0 10px; overflow-wrap: anywhere; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
.muted { color: var(--muted); }
.toc h2 { font-size: 14px; text-transform: uppercase; letter-spacing: .08em; color: var(--muted);
  border: 0; padding: 0; margin-bottom: 8px; }
.toc ol { margin: 0; padding-left: 20px; columns: 2 260px; column-gap: 32px; }
.toc ol ol { columns: auto; padding-left: 18px; list-style: lower-alpha; font-size: 14px; }
.toc li { margin: 2px 0; break-inside: avoid; }
.block { margin: 0 0 8px; min-width: 0; }
.caption, figcaption { color: var(--muted); font-size: 13.5px; margin: 8px 0 0; overflow-wrap: anywhere; }
.fig-num { font-weight: 650; color: var(--ink); }
/* a figure is as wide as its image (centred); the caption wraps to that width */
figure.fig { margin: 10px auto 18px; width: fit-content; max-width: 100%; min-width: min(100%, 440px); }
figure.fig img { display: block; max-width: 100%; height: auto; margin: 0 auto; }
figure.fig figcaption { contain: inline-size; }
.fig-row { display: flex; flex-wrap: wrap; gap: 18px 22px; align-items: flex-start; }
.fig-row figure.fig { flex: 1 1 300px; width: auto; min-width: 0; margin: 8px 0; }
.table-wrap { display: inline-block; vertical-align: top; overflow-x: auto; max-width: 100%;
  border: 1px solid var(--line); border-radius: 8px; }
table.data { border-collapse: collapse; min-width: 360px; font-size: 14px; }
table.data th, table.data td { padding: 7px 12px; text-align: left; vertical-align: top;
  border-bottom: 1px solid var(--line); overflow-wrap: break-word; }
table.data th, table.data td.num { white-space: nowrap; }
table.data thead th { background: #f6f8fb; font-weight: 600; color: var(--muted); font-size: 13px; }
table.data tbody tr:last-child td { border-bottom: 0; }
table.data tbody tr:hover td { background: #fafbfd; }
table.data .num { text-align: right; font-variant-numeric: tabular-nums; }
table.data td.best { font-weight: 700; color: var(--best-ink); background: var(--best); }
dl.config { display: grid; grid-template-columns: repeat(auto-fill, minmax(180px, 1fr)); gap: 8px; align-items: start;
  margin: 0; }
dl.config > div { border: 1px solid var(--line); border-radius: 7px; padding: 6px 10px; min-width: 0;
  background: #fbfcfe; }
dl.config > div.wide { grid-column: 1 / -1; }
dl.config dt { font-size: 12px; color: var(--muted); overflow-wrap: anywhere; }
dl.config dd { margin: 1px 0 0; font-family: var(--mono); font-size: 13.5px; overflow-wrap: anywhere; }
.tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 12px; }
.tile { border: 1px solid var(--line); border-radius: 9px; padding: 12px 14px; background: var(--accent-soft);
  min-width: 0; }
.tile-value { font-size: 22px; font-weight: 650; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
.tile-label { font-size: 12.5px; color: var(--muted); overflow-wrap: anywhere; }
footer { color: var(--muted); font-size: 12.5px; padding-top: 4px; padding-bottom: 30px; }
@media (max-width: 640px) {
  body { font-size: 14px; }
  .wrap { padding: 0 12px; }
  .card { padding: 14px 14px; }
  h1 { font-size: 22px; }
}
@media print {
  body { background: #fff; }
  .page-header { background: none; color: var(--ink); }
  .card { box-shadow: none; break-inside: auto; }
  figure.fig, table.data tr { break-inside: avoid; }
}
"""
