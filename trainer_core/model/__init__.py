"""The model: the MotionEncoder with its heads, and rollouts (teacher, scheduled, free run, ``autoregress``).

It builds on ``data`` (features, device tensors) and ``trainer_core.geometry``; never on
``train``, ``generate`` or ``evaluate``.
"""
