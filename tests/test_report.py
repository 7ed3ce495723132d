"""Tests of vbayes.report: embedded figures, escaping, tables, atomic writes, and a real browser render."""

from __future__ import annotations

import base64
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # this test process only; vbayes itself never touches pyplot

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from vbayes import __version__  # noqa: E402
from vbayes import plots as P  # noqa: E402
from vbayes.report.html import format_cell, format_number  # noqa: E402
from vbayes.report import Report  # noqa: E402

from browser import chromium_path, render_report  # noqa: E402

DATA_URI = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def _fig(seed: int = 0) -> Figure:
    g = torch.Generator().manual_seed(seed)
    return P.figure_for(P.plot_image_grid(torch.rand(6, 1, 8, 8, generator=g), ncols=3))


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_every_figure_embedded_and_named_ones_saved(tmp_path: Path) -> None:
    report = Report("Run", subtitle="sub")
    report.add_figure(_fig(0), "first", name="one")
    report.add_figure(P.plot_blending(torch.rand(4, 1, 8, 8)), "an Axes works too")  # unnamed
    report.add_figures_row([(_fig(1), "left", "two.png"), (_fig(2), "right", None)], heading="Row")
    path = report.write(tmp_path)
    page = path.read_text(encoding="utf-8")
    embedded = [base64.b64decode(b) for b in DATA_URI.findall(page)]
    assert len(embedded) == 4 and all(png[:8] == b"\x89PNG\r\n\x1a\n" for png in embedded)
    assert _files(tmp_path) == ["figures/one.png", "figures/two.png", "report.html"]  # no temp files
    assert (tmp_path / "figures" / "one.png").read_bytes() == embedded[0]
    assert (tmp_path / "figures" / "two.png").read_bytes() == embedded[2]
    for i in range(1, 5):
        assert f"Figure {i}." in page
    assert 'class="fig-row"' in page and "<figcaption>" in page


def test_page_is_self_contained_with_header_and_toc(tmp_path: Path) -> None:
    report = Report("VAE on mnist5k")
    report.add_config({"latent": 2})
    report.add_section("Latent space")
    report.add_figure(_fig(), "map", heading="Latent map")
    report.add_section("Latent space")  # duplicate headings get distinct ids
    page = report.to_html()
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert f"vbayes {__version__}" in page and "UTC" in page and "<h1>VAE on mnist5k</h1>" in page
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "max-width: 100%" in page and "overflow-x: auto" in page
    ids = re.findall(r'id="([^"]+)"', page)
    assert len(ids) == len(set(ids)) == 4
    for anchor in re.findall(r'href="#([^"]+)"', page):
        assert anchor in ids
    toc = page[page.index('<nav class="toc'):page.index("</nav>")]
    assert [re.sub("<[^>]+>", "", s) for s in re.findall(r'<a href="#[^"]+">[^<]*</a>', toc)] == [
        "Configuration", "Latent space", "Latent map", "Latent space"]


class _TagBalance(HTMLParser):
    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


def test_markup_is_well_nested() -> None:
    report = Report("t", subtitle="s")
    report.add_config({"a": 1, "long": "x" * 80})
    report.add_metrics({"nll": 1.5})
    report.add_table("T", [{"a": 1.0, "b": "x"}], caption="c", highlight={"a": "max"})
    report.add_table("Empty", [])
    report.add_section("S")
    report.add_text("", "one\n\ntwo")
    report.add_figures_row([(_fig(), "a", None), (_fig(1), "b", None)], heading="Row")
    checker = _TagBalance()
    checker.feed(report.to_html())
    assert checker.errors == [] and checker.stack == []


def test_text_config_and_tables_are_escaped() -> None:
    report = Report("<script>alert(1)</script>", subtitle="a & b")
    report.add_config({"cmd": "<b>bold</b>", "nested": {"path": "x\"y"}, "lr": 0.001, "layers": [400, 200]})
    report.add_text("Notes <i>", "first <em>para</em>\nsame para\n\n\nsecond & last")
    report.add_table("T", [{"<k>": "<v>"}])
    page = report.to_html()
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold" not in page
    assert "<dt>nested.path</dt><dd>x&quot;y</dd>" in page
    assert "<dd>0.001</dd>" in page and "<dd>[400, 200]</dd>" in page
    assert "<p>first &lt;em&gt;para&lt;/em&gt;\nsame para</p><p>second &amp; last</p>" in page
    assert "Notes &lt;i&gt;" in page and "a &amp; b" in page
    assert "<th scope=\"col\">&lt;k&gt;</th>" in page and "<td>&lt;v&gt;</td>" in page


def test_table_numbers_nan_and_highlight() -> None:
    report = Report("t")
    rows = [{"model": "AE", "nll": float("nan"), "acc": 0.91, "n": 1000},
            {"model": "VAE", "nll": 143.2134, "acc": 0.95, "n": 1000},
            {"model": "BAE", "nll": 150.0, "acc": np.float64(0.95), "n": None}]
    report.add_table("Metrics", rows, caption="nats", highlight={"nll": "min", "acc": "max"})
    page = report.to_html()
    body = page[page.index("<tbody>"):page.index("</tbody>")]
    cells = re.findall(r"<td([^>]*)>([^<]*)</td>", body)
    assert [c[1] for c in cells] == ["AE", "\u2014", "0.9100", "1000",
                                     "VAE", "143.21", "0.9500", "1000",
                                     "BAE", "150", "0.9500", "\u2014"]
    best = [text for attr, text in cells if "best" in attr]
    assert best == ["143.21", "0.9500", "0.9500"]  # ties are all marked
    assert 'class="num"' in body and '<p class="caption">nats</p>' in page
    with pytest.raises(ValueError, match="unknown column"):
        report.add_table("x", rows, highlight={"nope": "min"})
    with pytest.raises(ValueError, match="'min' or 'max'"):
        report.add_table("x", rows, highlight={"nll": "lowest"})


@pytest.mark.parametrize("value, text", [
    (0, "0"), (3500, "3500"), (torch.tensor(7), "7"), (2.0, "2"), (-150.8123, "-150.81"), (1234.567, "1,234.57"),
    (1.23456, "1.235"), (0.012345, "0.0123"), (1e-5, "1.000e-05"), (2.5e7, "2.500e+07"),
    (math.nan, "\u2014"), (math.inf, "\u221e"), (torch.tensor(0.5), "0.5000"),
])
def test_number_formatting(value, text) -> None:
    assert format_number(value) == text


def test_cell_formatting_of_non_numbers() -> None:
    assert format_cell(None) == "\u2014" and format_cell(True) == "true" and format_cell("mlp") == "mlp"


def test_bad_figure_names_and_types() -> None:
    report = Report("t")
    report.add_figure(_fig(), "a", name="dup")
    with pytest.raises(ValueError, match="used twice"):
        report.add_figure(_fig(), "b", name="dup")
    with pytest.raises(ValueError, match="must be letters"):
        report.add_figure(_fig(), "c", name="../escape")
    with pytest.raises(TypeError, match="Figure or Axes"):
        report.add_figure("not a figure", "d")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no figures"):
        report.add_figures_row([])


def test_write_replaces_old_report_and_closes_pyplot_figures(tmp_path: Path) -> None:
    (tmp_path / "report.html").write_text("old")
    fig, ax = plt.subplots()
    P.plot_image_grid(torch.rand(3, 1, 8, 8), ax=ax)
    report = Report("t")
    report.add_figure(fig, "pyplot figure", name="grid")
    assert plt.fignum_exists(fig.number)
    report.write(tmp_path)
    assert not plt.fignum_exists(fig.number)
    assert "old" != (tmp_path / "report.html").read_text() and "pyplot figure" in (tmp_path / "report.html").read_text()
    report.write(tmp_path / "again")  # the PNGs are kept, so writing twice works
    assert _files(tmp_path / "again") == ["figures/grid.png", "report.html"]
    assert _files(tmp_path) == ["again/figures/grid.png", "again/report.html", "figures/grid.png", "report.html"]


def test_failed_write_leaves_no_page_and_no_temp_files(tmp_path: Path) -> None:
    report = Report("t")
    report.add_figure(_fig(), "named", name="grid")
    (tmp_path / "figures").write_text("a file where the figures folder should be")
    with pytest.raises(OSError):
        report.write(tmp_path)
    assert _files(tmp_path) == ["figures"]  # the page is written last, so it never refers to missing files


def _sample_report(out: Path) -> Path:
    """A report like a real run's: long config, metric tiles, a wide table, rows of figures."""
    g = torch.Generator().manual_seed(0)
    z, labels = torch.randn(500, 2, generator=g), torch.arange(500) % 10
    x = torch.rand(10, 1, 28, 28, generator=g)
    report = Report("VAE and AE on mnist5k", subtitle="vbayes demo --out runs/demo")
    report.add_config({"data": "mnist5k", "latent": 2, "lr": 0.001, "epochs": 30,
                       "data_dir": "/a/very/long/path/" + "segment/" * 30, "arch": {"hidden": [400], "kind": "mlp"}})
    report.add_metrics({"test_nll (VAE)": 143.2, "test_elbo (VAE)": -150.8, "seconds / epoch": 0.83})
    report.add_table("Test metrics", [{"model": "VAE", "test_elbo": -150.8, "test_nll": 143.2},
                                      {"model": "AE", "test_elbo": math.nan, "test_nll": math.nan}],
                     caption="Nats per example.", highlight={"test_nll": "min"})
    report.add_table("A wide table", [{f"metric_number_{i}": i * 1.234 for i in range(40)}] * 3)
    report.add_section("Latent space")
    report.add_figures_row([(P.plot_latent_map(z, labels, title="VAE"), "VAE latent means.", "latent_vae"),
                            (P.plot_latent_map(3 * z, labels, title="AE"), "AE codes.", "latent_ae")],
                           heading="Latent maps")
    report.add_figure(P.plot_manifold(lambda c: torch.sigmoid(c.sum(1))[:, None, None, None].expand(-1, 1, 28, 28)),
                      "Decoded grid of prior quantiles.", name="manifold", heading="Manifold")
    report.add_section("Reconstructions")
    report.add_figure(P.plot_reconstructions(x, x.flip(0)), "Inputs above, reconstructions below.")
    report.add_figure(P.plot_mean_std(x, x * 0.2, x), "Mean and per-pixel std.")
    report.add_text("Notes", "The AE has no prior, so its latent map has no fixed scale.\n\nSecond paragraph.")
    return report.write(out)


@pytest.mark.browser
@pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed")
@pytest.mark.parametrize("width", [1280, 500])
def test_report_renders_in_chromium(tmp_path: Path, width: int) -> None:
    page = _sample_report(tmp_path / "run")
    result = render_report(page, tmp_path, width=width, full_page=width > 1000)
    assert result["images"] == 5
    assert result["all_images_loaded"], result["broken"]
    assert min(result["natural_widths"]) > 100
    assert not result["overflows"], (result["scroll_width"], result["client_width"], result["offenders"])
    shot = result["screenshot"]
    assert shot is not None and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _files(tmp_path / "run") == ["figures/latent_ae.png", "figures/latent_vae.png",
                                         "figures/manifold.png", "report.html"]  # probe copy removed


@pytest.mark.browser
@pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed")
def test_browser_probe_detects_broken_images_and_overflow(tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><img src="missing.png" alt="x">'
                   '<div style="width: 3000px">wide</div></body></html>')
    result = render_report(bad, tmp_path, width=800, full_page=False)
    assert result["images"] == 1 and not result["all_images_loaded"]
    assert result["overflows"] and result["scroll_width"] >= 3000
