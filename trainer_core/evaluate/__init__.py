"""Evaluation of a trained checkpoint on any dataset folder.

- ``offline``: teacher and free-run metrics beside the baselines (``train.metrics``, the code training scores with);
- ``long_rollout``: ``motiontune eval --long``: the ``FreeRun/long`` metrics (``train.long_eval``) of a checkpoint
  and their table.

The top of the arrows: evaluate uses data, model, train and generate; none of them uses evaluate.
"""
