"""``make docs``: the API reference (pdoc) and the index page, built without executing notebooks."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "vbayes_docs_build", Path(__file__).resolve().parent.parent / "docs" / "build.py")
docs_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(docs_build)


def test_docs_index_links_the_public_modules_and_examples(tmp_path):
    out = tmp_path / "site"
    assert docs_build.main(["--out", str(out), "--examples", str(tmp_path / "none"), "--no-execute"]) == 0
    index = (out / "index.html").read_text()
    links = set(re.findall(r'href="([^"#]+)"', index))
    for module in docs_build.PUBLIC:
        page = "api/" + module.replace(".", "/") + ".html"
        assert page in links and (out / page).exists(), page
    assert "elbo_loss" in (out / "api" / "vbayes.html").read_text()  # from the docstrings
    examples = [link for link in links if link.startswith("examples/")]
    assert len(examples) >= 4 and all((out / e).exists() for e in examples)
    assert "vbayes data download" in index  # the README is the front page
