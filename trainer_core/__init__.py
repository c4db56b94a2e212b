"""The motion trainer: data, geometry, model, losses, schedules, training loop.

Imports torch and numpy only (never Ray, never Optuna), so it runs where Ray is not installed.
"""

__version__ = "0.1.0"
