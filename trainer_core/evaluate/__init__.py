"""Evaluation of a trained checkpoint on any dataset folder.

- ``offline``: teacher and free-run metrics beside the baselines (``train.metrics``, the code training scores with);
- ``long_rollout``: the ``FreeRun/long`` metrics of rollouts far past the training horizon.

The top of the arrows: evaluate uses data, model, train and generate; none of them uses evaluate.
"""
