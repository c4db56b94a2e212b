"""The defaults of ``motiontune pretrain``'s own knobs, defined once for ``pretrain.pretrain``, ``api.pretrain``
and the CLI.

A module of its own, without torch, so the CLI's parser shows them in ``--help``
without importing torch (``motiontune --help`` stays fast).
"""

from __future__ import annotations

PRETRAIN_EPOCHS = 50
PRETRAIN_BATCH = 16  # frame pairs per optimizer step
PRETRAIN_LR = 5e-4
