"""The model: the MotionEncoder with its heads, and rollouts (teacher, scheduled, free run).

It builds on ``data`` (features, device tensors) and ``trainer_core.geometry``; never on
``train``, ``generate`` or ``evaluate``.
"""
