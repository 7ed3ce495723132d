"""Old import paths of modules that moved, kept as aliases for one release (0.2 drops them).

``import vbayes.priors`` (say) returns the module ``vbayes.layers.priors`` itself, so code written
against 0.1 keeps working; new code should use the new paths (listed in :data:`MOVED`, :data:`MOVED_PACKAGES` and in
the README's layout section).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType

MOVED: dict[str, str] = {
    "vbayes.heads": "vbayes.layers.heads",
    "vbayes.priors": "vbayes.layers.priors",
    "vbayes.convert": "vbayes.layers.convert",
    "vbayes.sampling": "vbayes.layers.sampling",
    "vbayes.predict": "vbayes.layers.predict",
    "vbayes.elbo": "vbayes.losses",
    "vbayes.checkpoint": "vbayes.train.checkpoint",
    "vbayes.distributed": "vbayes.train.distributed",
    "vbayes.training": "vbayes.train",
    "vbayes.training.logs": "vbayes.train.logs",
    "vbayes.training.steps": "vbayes.train.steps",
    "vbayes.training.types": "vbayes.train.types",
    "vbayes._report_html": "vbayes.report.html",
    "vbayes.vae_run": "vbayes.studies.autoencoders.vae_run",
    "vbayes.vae_report": "vbayes.studies.autoencoders.vae_report",
    "vbayes.predictive": "vbayes.methods.predictive",
    "vbayes.io": "vbayes.files",
    "vbayes.config": "vbayes.cli.config",
    "vbayes.runs": "vbayes.cli.runs",
}
"""Old module name -> new module name."""

MOVED_PACKAGES: dict[str, str] = {
    "vbayes.analysis": "vbayes.studies.autoencoders",
    "vbayes.uq": "vbayes.studies.uq",
    "vbayes.commands": "vbayes.cli.commands",
    "vbayes.bench": "vbayes.cli.bench",
}
"""Old package -> new package; their submodules move with them (``vbayes.uq.pipeline`` ->
``vbayes.studies.uq.pipeline``)."""


def new_name(name: str) -> str | None:
    """The current name of the module once called ``name``, or None if it did not move."""
    if name in MOVED:
        return MOVED[name]
    for old, new in MOVED_PACKAGES.items():
        if name == old or name.startswith(old + "."):
            return new + name[len(old):]
    return None


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves an old module name to the module at its new path."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        if new_name(name) is None:
            return None
        return importlib.util.spec_from_loader(name, self)

    def __init__(self) -> None:
        self._saved: dict[str, tuple] = {}  # new module name -> its own (spec, loader)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(new_name(spec.name))  # type: ignore[arg-type]
        self._saved[module.__name__] = (module.__spec__, module.__loader__)  # the import system overwrites them next
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run (the new module is imported already); give it back its own spec."""
        module.__spec__, module.__loader__ = self._saved.pop(module.__name__)


SHADOWED = ("vbayes.predict",)
"""Old module paths whose last name is also a public attribute of the package (``vbayes.predict``
is the function). The import system sets a submodule it loads as an attribute of its parent, so
the first ``import vbayes.predict`` would replace the function by the module; these aliases are
registered in ``sys.modules`` up front instead, where an import finds them without loading."""


def install() -> None:
    """Put the alias finder on ``sys.meta_path`` (once) and register the :data:`SHADOWED` aliases."""
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _AliasFinder())  # before the path finder, which would load a second copy
    for old in SHADOWED:
        sys.modules.setdefault(old, importlib.import_module(MOVED[old]))
