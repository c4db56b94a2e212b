"""The motion trainer: data, geometry, model, losses, schedules, training loop.

Imports torch and numpy only (never Ray, never Optuna), so it runs where Ray is not installed.

Imports point one way, down this list (a module imports only from its own line and the lines
below it; nothing imports ``api``):

- ``api``: the entry points behind the CLI's ``train``, ``eval``, ``pretrain`` and ``data``;
- ``evaluate``: a checkpoint scored on any dataset folder, and the long-rollout metric;
- ``generate``: a trained model rolled out into motion, exported and previewed;
- ``train``: the run's set-up, losses, schedules, the loop, the epoch metrics, checkpoints, pre-training;
- ``model``: the MotionModel with its heads, and its rollouts;
- ``data``: BVH import, clips, the skeleton, features, datasets, splits, device tensors;
- the leaves: ``config_load`` -> ``config`` -> ``split_spec``; ``io_utils``; ``errors``;
  ``geometry`` (rotations and FK); ``device``.
"""

__version__ = "0.1.0"
