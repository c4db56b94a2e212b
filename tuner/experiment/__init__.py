"""An experiment directory and what it holds: the bottom layer of the tuner, which imports no other part of it.

``files`` (where it lives, local or a pyarrow URI, and its byte IO), ``meta`` (``motiontune.json``),
``results`` (``trials.parquet``/``history.parquet`` from Ray Tune's state), ``status`` (the persisted progress
line), ``lock`` (one driver per experiment), ``storage`` (is the storage shared across nodes), ``usage`` (how
much it holds).
"""
