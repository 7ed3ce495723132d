"""Execute the example notebooks: ``make examples`` (or ``python examples/run.py``).

Each ``examples/NN_*.ipynb`` runs top to bottom in a fresh kernel of *this* Python (the
interpreter running this script, i.e. the project's ``.venv``; no kernelspec needs
registering) and is written, with its outputs, to ``--out`` (default ``runs/examples/``) as
``NAME.ipynb`` and ``NAME.html``; ``timings.json`` records the seconds each took.
``--quick`` sets ``VBAYES_QUICK=1``: every notebook then shrinks its epochs and samples so
that the test suite can run them all in about a minute.

    python examples/run.py                 # all notebooks, full settings
    python examples/run.py --quick 03      # the notebooks whose name contains "03"
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def notebooks(select: list[str] | None = None) -> list[Path]:
    """The example notebooks, optionally those whose file name contains one of ``select``."""
    found = sorted(HERE.glob("[0-9][0-9]_*.ipynb"))
    if select:
        found = [p for p in found if any(s in p.name for s in select)]
    return found


def kernel_manager_class():
    """A ``KernelManager`` class whose kernels are ``sys.executable -m ipykernel_launcher``.

    Only ipykernel's built-in ``python3`` spec is visible (``kernel_dirs=[]``), and jupyter_client
    fills it with the running interpreter, so a ``python3`` kernel registered elsewhere on the
    machine (another Python, another virtual environment) is never picked up.
    """
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from traitlets import default

    class VenvKernelManager(KernelManager):
        @default("kernel_spec_manager")
        def _only_this_python(self) -> KernelSpecManager:
            return KernelSpecManager(kernel_dirs=[])

    return VenvKernelManager


def execute(path: Path, out_dir: Path, quick: bool, timeout: int = 900, html: bool = True) -> float:
    """Run notebook ``path`` in a fresh kernel; write the executed copy (and HTML) into ``out_dir``.

    The kernel's working directory is ``out_dir``. Returns the wall time in seconds; raises
    ``nbclient.exceptions.CellExecutionError`` (with the failing cell's traceback) on an error.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    out_dir.mkdir(parents=True, exist_ok=True)
    env_before = os.environ.get("VBAYES_QUICK")
    os.environ["VBAYES_QUICK"] = "1" if quick else "0"  # the kernel inherits this environment
    t0 = time.perf_counter()
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                kernel_manager_class=kernel_manager_class(),
                                resources={"metadata": {"path": str(out_dir)}})
        try:
            client.execute()
        finally:
            nbformat.write(nb, out_dir / path.name)  # also a failed run, for reading its traceback
    finally:
        if env_before is None:
            os.environ.pop("VBAYES_QUICK", None)
        else:
            os.environ["VBAYES_QUICK"] = env_before
    seconds = time.perf_counter() - t0
    if html:
        from nbconvert import HTMLExporter

        body, _ = HTMLExporter().from_notebook_node(nb)
        (out_dir / path.with_suffix(".html").name).write_text(body, encoding="utf-8")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("select", nargs="*", help="run only notebooks whose name contains one of these")
    parser.add_argument("--out", default="runs/examples", help="where the executed copies go (default runs/examples)")
    parser.add_argument("--quick", action="store_true", help="VBAYES_QUICK=1: small settings, for tests")
    parser.add_argument("--no-html", action="store_true", help="do not render HTML copies")
    args = parser.parse_args(argv)
    from nbclient.exceptions import CellExecutionError

    out_dir = Path(args.out)
    paths = notebooks(args.select)
    if not paths:
        print("no notebook matches", file=sys.stderr)
        return 2
    timings_file = out_dir / "timings.json"
    timings = json.loads(timings_file.read_text()) if timings_file.exists() else {}
    failed = []
    for path in paths:
        print(f"{path.name}: running{' (quick)' if args.quick else ''} ...", flush=True)
        try:
            seconds = execute(path, out_dir, args.quick, html=not args.no_html)
        except CellExecutionError as err:
            failed.append(path.name)
            print(f"{path.name}: FAILED (executed copy in {out_dir / path.name})\n{err}", file=sys.stderr)
            continue
        timings[path.stem] = {"seconds": round(seconds, 1), "quick": args.quick}
        print(f"{path.name}: {seconds:.1f} s -> {out_dir / path.name}", flush=True)
        timings_file.write_text(json.dumps(timings, indent=2) + "\n")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
