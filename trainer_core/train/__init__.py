"""Training: the run's set-up (``setup``), losses, schedules, the loop (``loop.fit``), the epoch metrics and
baselines (``metrics``), the long-rollout validation (``long_eval``, ``FreeRun/long``), checkpoints, metric
files, the summary, and pre-training the encoder (``pretrain``).

Builds on ``data`` and ``model``; never imports ``generate`` or ``evaluate``.
"""
