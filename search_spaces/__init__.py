"""Optuna define-by-run search spaces and the mapping from sampled params to a trainer config.

Never imports Ray.
"""
