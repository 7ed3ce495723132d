"""Old import paths of modules that moved, kept as aliases for one release (0.2 drops them).

``import vbayes.priors`` (say) returns the module ``vbayes.layers.priors`` itself, so code written
against 0.1 keeps working; new code should use the new paths (listed in :data:`MOVED` and in the
README's layout section).
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
}
"""Old module name -> new module name."""


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves an old module name to the module at its new path."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        if name not in MOVED:
            return None
        return importlib.util.spec_from_loader(name, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(MOVED[spec.name])
        self._saved = (module.__spec__, module.__loader__)  # the import system overwrites them next
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run (the new module is imported already); give it back its own spec."""
        module.__spec__, module.__loader__ = self._saved


def install() -> None:
    """Put the alias finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.append(_AliasFinder())
