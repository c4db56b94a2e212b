"""Domain exceptions.

Library code raises these with a message of one shape, naming the file or field
and the fix; only the CLI turns them into one line on stderr and exit code 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class MotiontuneError(Exception):
    """Bad input from the user: a file, a field or a value that must be fixed."""


class ConfigError(MotiontuneError):
    """A config file or a config value is wrong."""


class DataError(MotiontuneError):
    """A data file (BVH, clip JSON, NPZ, skeleton) is missing or malformed."""


class CheckpointError(MotiontuneError):
    """A checkpoint cannot be read or does not match the run."""


class DivergedError(Exception):
    """Training produced a non-finite loss. Not a user error: the run stops itself."""

    def __init__(self, epoch: int, reason: str):
        super().__init__(f"diverged at epoch {epoch}: {reason}")
        self.epoch = epoch
        self.reason = reason


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A ' (did you mean `x`?)' hint, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""


def raise_all(problems: list[str], exc: type[Exception], where: str = "") -> None:
    """Raise ``exc`` once with every problem found, joined on one line: ``where: p1; p2`` (no ``where``:
    ``p1; p2``); nothing when there are none."""
    if problems:
        prefix = f"{where}: " if where else ""
        raise exc(prefix + "; ".join(problems))
