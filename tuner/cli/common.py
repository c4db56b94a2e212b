"""What every command shares: the parser that fails in one line, exit codes, JSON output."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, NoReturn

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
# A sweep, resume or verify that ran but in which no trial (or no verification trial) finished: the input was
# accepted (2 is bad input, refused before any work), the trials all failed; the last stderr line says why.
EXIT_NO_TRIAL_FINISHED = 1


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (exit code 2) and options are never abbreviated."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    print(f"motiontune: warning: {message}", file=sys.stderr)


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2))


def trainer_api():  # noqa: ANN202 - imported on use so `motiontune --help` stays fast
    from trainer_core import api

    return api
