"""Self-contained HTML reports: configuration, metrics tables, text and figures on one page.

A :class:`Report` collects blocks in order and :meth:`Report.write` renders one
``report.html`` that needs no server, no network and no script: CSS inline, figures embedded
as base64 PNG ``data:`` URIs (named ones also saved as ``figures/<name>.png``).

Example::

    report = Report("VAE on mnist5k", subtitle="2-D latent, 30 epochs")
    report.add_config(config)
    report.add_table("Test metrics", [{"model": "VAE", "test_nll": 135.2}], highlight={"test_nll": "min"})
    report.add_section("Figures")
    report.add_figure(figure_for(plot_manifold(decode)), "Decoded prior quantiles.", name="manifold")
    path = report.write(Path("runs/vae"))
"""

from __future__ import annotations

import base64
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from vbayes.files import atomic_write_bytes
from vbayes.plots.common import PNG_DPI, close_figure, figure_for, figure_to_png
from vbayes.report.html import (
    CSS,
    escape,
    format_cell,
    format_compact,
    format_config_value,
    is_number,
    paragraphs,
)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_CSS_PX_PER_INCH = 96


@dataclass
class _Image:
    png: bytes
    caption: str
    name: str | None
    number: int

    def html(self) -> str:
        width, height = _png_size(self.png)
        scale = _CSS_PX_PER_INCH / PNG_DPI  # show at the figure's size in inches, sharp on HiDPI
        w, h = max(1, round(width * scale)), max(1, round(height * scale))
        data = base64.b64encode(self.png).decode("ascii")
        cap = escape(self.caption)
        return (f'<figure class="fig"><img src="data:image/png;base64,{data}" alt="{cap}" '
                f'width="{w}" height="{h}" loading="eager">'
                f'<figcaption><span class="fig-num">Figure {self.number}.</span> {cap}</figcaption></figure>')


@dataclass
class _Block:
    kind: str
    heading: str | None
    body: str


@dataclass
class _Section:
    heading: str | None
    explicit: bool
    blocks: list[_Block] = field(default_factory=list)


class Report:
    """An HTML report built block by block and written with :meth:`write`.

    Blocks added after :meth:`add_section` belong to that section (their headings become
    sub-headings); blocks added before any section each form their own top-level section.
    Every section and headed block is listed in the table of contents.

    Args:
        title: the page title.
        subtitle: an optional line under the title (e.g. the command that made the run).
    """

    def __init__(self, title: str, subtitle: str = "") -> None:
        self.title = str(title)
        self.subtitle = str(subtitle)
        self.created = datetime.now(timezone.utc)
        self._sections: list[_Section] = []
        self._figures: list[Figure] = []
        self._images: list[_Image] = []

    # -- building -----------------------------------------------------------------------------

    def add_section(self, heading: str) -> None:
        """Start a new top-level section called ``heading``; later blocks go into it."""
        self._sections.append(_Section(str(heading), explicit=True))

    def add_config(self, config: Mapping[str, Any], heading: str = "Configuration") -> None:
        """Show ``config`` (nested mappings flattened to dotted keys) as a grid of key / value pairs."""
        items = _flatten(config)
        if not items:
            body = '<p class="muted">(empty)</p>'
        else:
            cells = "".join(_config_item(k, format_config_value(v)) for k, v in items)
            body = f'<dl class="config">{cells}</dl>'
        self._add(_Block("config", heading, body))

    def add_metrics(self, metrics: Mapping[str, Any], heading: str = "Key results", caption: str = "") -> None:
        """Show a few headline numbers (``{name: value}``) as large tiles."""
        tiles = "".join(f'<div class="tile"><div class="tile-value">{escape(format_compact(v))}</div>'
                        f'<div class="tile-label">{escape(str(k))}</div></div>' for k, v in metrics.items())
        self._add(_Block("metrics", heading, f'<div class="tiles">{tiles}</div>' + _caption(caption)))

    def add_table(self, heading: str, rows: Sequence[Mapping[str, Any]], caption: str = "",
                  highlight: Mapping[str, str] | None = None) -> None:
        """Show ``rows`` (mappings with the same keys) as a table that scrolls sideways when wide.

        Numbers are right-aligned and formatted to a sensible precision; NaN, ``None`` and
        missing cells show as "—". ``highlight`` maps a column to ``"min"`` or ``"max"`` and
        marks that column's best value(s) in bold.

        Raises:
            ValueError: ``highlight`` names an unknown column or a direction other than min/max.
        """
        rows = [{str(k): v for k, v in row.items()} for row in rows]
        columns: list[str] = []
        for row in rows:
            columns += [k for k in row if k not in columns]
        best = _best_cells(rows, columns, highlight or {})
        numeric = {c: all(is_number(r.get(c)) or r.get(c) is None for r in rows) for c in columns}
        num_attr = ' class="num"'
        head = "".join(f'<th{num_attr if numeric[c] else ""} scope="col">{escape(c)}</th>' for c in columns)
        body_rows = []
        for i, row in enumerate(rows):
            cells = []
            for c in columns:
                classes = (["num"] if numeric[c] else []) + (["best"] if (i, c) in best else [])
                attr = f' class="{" ".join(classes)}"' if classes else ""
                cells.append(f"<td{attr}>{escape(format_cell(row.get(c)))}</td>")
            body_rows.append("<tr>" + "".join(cells) + "</tr>")
        empty = "" if rows else f'<tr><td class="muted" colspan="{max(len(columns), 1)}">(no rows)</td></tr>'
        table = (f'<div class="table-wrap"><table class="data"><thead><tr>{head}</tr></thead>'
                 f'<tbody>{"".join(body_rows)}{empty}</tbody></table></div>')
        self._add(_Block("table", heading, table + _caption(caption)))

    def add_text(self, heading: str, text: str) -> None:
        """Add plain ``text`` (HTML-escaped); blank lines separate paragraphs."""
        self._add(_Block("text", heading or None, paragraphs(text)))

    def add_figure(self, fig: Figure | Axes, caption: str, name: str | None = None,
                   heading: str | None = None) -> None:
        """Embed ``fig`` (rendered now, as PNG) with a numbered ``caption``.

        ``name`` (letters, digits, ``_.-``) also saves it as ``figures/<name>.png`` on :meth:`write`.
        Later changes to ``fig`` are not shown; the figure is closed by :meth:`write`.
        """
        image = self._image(fig, caption, name)
        self._add(_Block("figure", heading, image.html()))

    def add_figures_row(self, items: Sequence[tuple[Figure | Axes, str, str | None]],
                        heading: str | None = None) -> None:
        """Show several ``(figure, caption, name)`` side by side, wrapping on narrow screens."""
        if not items:
            raise ValueError("Report.add_figures_row: no figures given")
        figures = "".join(self._image(fig, cap, name).html() for fig, cap, name in items)
        self._add(_Block("figures", heading, f'<div class="fig-row">{figures}</div>'))

    # -- output -------------------------------------------------------------------------------

    def to_html(self) -> str:
        """The complete, self-contained HTML page."""
        from vbayes import __version__

        ids = _Ids()
        toc: list[str] = []
        sections: list[str] = []
        for section in self._sections:
            sections.append(self._render_section(section, ids, toc))
        toc_html = (f'<nav class="toc card" aria-label="Contents"><h2>Contents</h2><ol>{"".join(toc)}</ol></nav>'
                    if toc else "")
        when = self.created.strftime("%Y-%m-%d %H:%M UTC")
        subtitle = f'<p class="subtitle">{escape(self.subtitle)}</p>' if self.subtitle else ""
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<meta name="generator" content="vbayes {escape(__version__)}">\n'
            f"<title>{escape(self.title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            f'<header class="page-header"><div class="wrap"><div class="brand">vbayes report</div>'
            f"<h1>{escape(self.title)}</h1>{subtitle}"
            f'<p class="meta"><span>Generated {when}</span><span>vbayes {escape(__version__)}</span>'
            f"<span>{len(self._images)} figure{'s' if len(self._images) != 1 else ''}</span></p>"
            f"</div></header>\n<main class=\"wrap\">\n{toc_html}\n{''.join(sections)}\n</main>\n"
            f'<footer class="wrap">Generated by vbayes {escape(__version__)} on {when}. '
            "Self-contained page: figures are embedded, no network access needed.</footer>\n"
            "</body>\n</html>\n"
        )

    def write(self, out_dir: str | Path) -> Path:
        """Write ``out_dir/report.html`` (and ``out_dir/figures/<name>.png`` for named figures).

        Every file is written atomically (temporary file, fsync, rename), figures first, so a
        reader never sees a half-written page. Closes the figures added. Returns the page's path.
        """
        out = Path(out_dir)
        for image in self._images:
            if image.name is not None:
                atomic_write_bytes(out / "figures" / f"{image.name}.png", image.png)
        path = out / "report.html"
        atomic_write_bytes(path, self.to_html().encode("utf-8"))
        for fig in self._figures:
            close_figure(fig)
        self._figures.clear()
        return path

    # -- internals ----------------------------------------------------------------------------

    def _add(self, block: _Block) -> None:
        if self._sections and self._sections[-1].explicit:
            self._sections[-1].blocks.append(block)
        else:  # a stand-alone block is its own section, titled by its heading
            self._sections.append(_Section(block.heading, explicit=False, blocks=[block]))
            block.heading = None

    def _image(self, fig: Figure | Axes, caption: str, name: str | None) -> _Image:
        if isinstance(fig, Axes):
            fig = figure_for(fig)
        if not isinstance(fig, Figure):
            raise TypeError(f"Report: expected a matplotlib Figure or Axes, got {type(fig).__name__}")
        if name is not None:
            name = name[:-4] if name.endswith(".png") else name
            if not _NAME.match(name):
                raise ValueError(f"Report: figure name {name!r} must be letters, digits, '_', '.' or '-'")
            if any(im.name == name for im in self._images):
                raise ValueError(f"Report: figure name {name!r} used twice")
        image = _Image(figure_to_png(fig), str(caption), name, number=len(self._images) + 1)
        self._images.append(image)
        self._figures.append(fig)
        return image

    @staticmethod
    def _render_section(section: _Section, ids: _Ids, toc: list[str]) -> str:
        parts = []
        sub_toc = []
        sid = ""
        if section.heading:
            sid = ids.new(section.heading)
            parts.append(f'<h2 id="{sid}">{escape(section.heading)}</h2>')
        for block in section.blocks:
            if block.heading:
                bid = ids.new(block.heading)
                parts.append(f'<h3 id="{bid}">{escape(block.heading)}</h3>')
                sub_toc.append(f'<li><a href="#{bid}">{escape(block.heading)}</a></li>')
            parts.append(f'<div class="block block-{block.kind}">{block.body}</div>')
        if section.heading:
            nested = f"<ol>{''.join(sub_toc)}</ol>" if sub_toc else ""
            toc.append(f'<li><a href="#{sid}">{escape(section.heading)}</a>{nested}</li>')
        else:
            toc.extend(sub_toc)
        return f'<section class="card">{"".join(parts)}</section>\n'


class _Ids:
    """Unique, URL-safe element ids from headings."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def new(self, heading: str) -> str:
        base = "s-" + (re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-") or "section")
        candidate, k = base, 2
        while candidate in self.used:
            candidate, k = f"{base}-{k}", k + 1
        self.used.add(candidate)
        return candidate


def _config_item(key: str, value: str) -> str:
    wide = ' class="wide"' if len(value) > 28 else ""  # long values (paths, lists) span the row
    return f"<div{wide}><dt>{escape(key)}</dt><dd>{escape(value)}</dd></div>"


def _caption(text: str) -> str:
    return f'<p class="caption">{escape(text)}</p>' if text else ""


def _flatten(config: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            items += _flatten(value, name + ".")
        else:
            items.append((name, value))
    return items


def _best_cells(rows: Sequence[Mapping[str, Any]], columns: list[str],
                highlight: Mapping[str, str]) -> set[tuple[int, str]]:
    """``(row index, column)`` of the best finite value of each highlighted column."""
    best: set[tuple[int, str]] = set()
    for column, direction in highlight.items():
        if column not in columns:
            raise ValueError(f"Report.add_table: highlight names unknown column {column!r} (columns: {columns})")
        if direction not in ("min", "max"):
            raise ValueError(f"Report.add_table: highlight[{column!r}] must be 'min' or 'max', got {direction!r}")
        values = {i: float(r[column]) for i, r in enumerate(rows) if is_number(r.get(column))}
        finite = {i: v for i, v in values.items() if v == v and abs(v) != float("inf")}
        if finite:
            target = (min if direction == "min" else max)(finite.values())
            best |= {(i, column) for i, v in finite.items() if v == target}
    return best


def _png_size(png: bytes) -> tuple[int, int]:
    """Pixel ``(width, height)`` from a PNG's IHDR chunk."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("Report: figure did not render to PNG")
    width, height = struct.unpack(">II", png[16:24])
    return int(width), int(height)
