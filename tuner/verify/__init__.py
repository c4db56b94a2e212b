"""The verification: re-train the search's finalists and the base config on fresh seeds.

Imports ``search`` and ``experiment``.

``plan`` (the finalists and seeds, and the verification's Ray Tune experiment), ``trial`` (its trainable),
``stats`` (the verified ranking and its paired t intervals; no Ray).
"""


def __getattr__(name: str):  # noqa: ANN202
    """``tuner.verify._trial_label``: verifications written when ``verify`` was one module pickled their
    progress labeller under that name; it lives in ``plan`` now (imported only when asked for)."""
    if name == "_trial_label":
        from tuner.verify.plan import _trial_label

        return _trial_label
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
