"""Module paths that experiments written before the tuner's sub-packages pickled.

Ray Tune pickles the run config (its callbacks: ``Progress``, ``Snapshot``, ``TrialEpochBudget``) and the
verification's trial labeller by module path into ``tuner.pkl`` and ``experiment_state-*.json``. Those
experiments name ``tuner.progress``, ``tuner.status`` and ``tuner.verify``; registering the new modules
under the old names lets ``resume``, ``verify``, ``export`` and ``report`` read them. Registered by the CLI
(the top layer) only, so no lower module imports upward.
"""

from __future__ import annotations

import sys


def register_old_module_paths() -> None:
    """Make the pre-sub-package paths importable (idempotent)."""
    import tuner.verify
    from tuner.experiment import status
    from tuner.search import progress
    from tuner.verify import plan

    sys.modules.setdefault("tuner.progress", progress)
    sys.modules.setdefault("tuner.status", status)
    tuner.verify._trial_label = plan._trial_label  # was tuner/verify.py's; tuner.verify is now the package
