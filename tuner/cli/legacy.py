"""Module paths that experiments written before the tuner's sub-packages pickled.

Ray Tune pickles the run config (its callbacks: ``Progress``, ``Snapshot``, ``TrialEpochBudget``) and the
verification's trial labeller by module path into ``tuner.pkl`` and ``experiment_state-*.json``. Those
experiments name ``tuner.progress`` and ``tuner.status`` (and ``tuner.verify._trial_label``, which
``tuner/verify/__init__.py`` answers). A finder on ``sys.meta_path`` maps the old module names to the new
modules when, and only when, something imports them: nothing (Ray included) is imported before a command
runs, since ``init_ray`` must set Ray's auth mode before Ray is imported. Installed by the CLI (the top
layer), so no lower module names an upper one.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from types import ModuleType

OLD_MODULES = {"tuner.progress": "tuner.search.progress", "tuner.status": "tuner.experiment.status"}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        return importlib.util.spec_from_loader(name, self) if name in OLD_MODULES else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(OLD_MODULES[spec.name])  # the new module itself, under the old name too

    def exec_module(self, module: ModuleType) -> None:
        pass  # already executed under its new name


def register_old_module_paths() -> None:
    """Let the pre-sub-package module paths import (idempotent; imports nothing now)."""
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_Alias())
