"""The verification: re-train the search's finalists and the base config on fresh seeds.

Imports ``search`` and ``experiment``.

``plan`` (the finalists and seeds, and the verification's Ray Tune experiment), ``trial`` (its trainable),
``stats`` (the verified ranking and its paired t intervals; no Ray).
"""
