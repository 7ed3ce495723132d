"""The example notebooks: built from their sources, stored without outputs, and they run.

``test_examples_run`` executes every notebook with ``VBAYES_QUICK=1`` in a kernel of this
Python (what ``make examples`` does with the full settings), so that they never rot.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _load("vbayes_examples_build", EXAMPLES / "build.py")
run = _load("vbayes_examples_run", EXAMPLES / "run.py")


def test_at_least_four_notebooks_built_from_their_sources_without_outputs():
    import nbformat

    sources = build.sources()
    assert len(sources) >= 4
    for src in sources:
        nb_path = src.with_suffix(".ipynb")
        assert nb_path.read_text() == build.render(src), f"{nb_path.name} is stale: run python examples/build.py"
        nb = nbformat.read(nb_path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code and all(not c.outputs and c.execution_count is None for c in code)
        assert any("VBAYES_QUICK" in c.source for c in code)


def test_the_kernel_is_this_python():
    km = run.kernel_manager_class()(kernel_name="python3")
    assert km.kernel_spec.argv[0] == sys.executable


@pytest.mark.slow
def test_examples_run(tmp_path):
    import nbformat

    assert run.main(["--quick", "--no-html", "--out", str(tmp_path)]) == 0
    for nb_path in run.notebooks():
        nb = nbformat.read(tmp_path / nb_path.name, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        outputs = [o for c in code for o in c.outputs]
        assert not [o for o in outputs if o.output_type == "error"]
        last = code[-1].outputs
        assert any("image/png" in o.get("data", {}) for o in last), f"{nb_path.name} does not end with a figure"
