"""The ``motiontune`` command line. Commands are thin: parse options, make one library call.

Library code raises ``MotiontuneError`` for bad input; only this module turns it
into one line on stderr and exit code 2. Ray is imported only by the commands
that need it, so ``train`` and ``data`` run without it.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable, Sequence

from tuner.cli.advanced_cmds import add_pretrain, add_suggest
from tuner.cli.cluster_cmds import add_cluster
from tuner.cli.common import EXIT_BAD_INPUT, EXIT_DIVERGED, Parser, show_warning
from tuner.cli.generate_cmds import add_generate
from tuner.cli.space_cmds import add_space
from tuner.cli.sweep_cmds import add_resume_export, add_sweep
from tuner.cli.train_cmds import add_data, add_eval, add_train

COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_train, add_eval, add_data, add_space, add_sweep, add_resume_export, add_generate, add_cluster,
    add_pretrain, add_suggest,
]  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="motiontune", description="Hyperparameter search for a character-motion model.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from trainer_core.errors import DivergedError, MotiontuneError
    from tuner.cli.legacy import register_old_module_paths
    from tuner.search.stop import Stopped

    warnings.showwarning = show_warning
    args = build_parser().parse_args(argv)
    register_old_module_paths()  # experiments written before the sub-packages pickled the old module paths
    try:
        rc = args.func(args)
    except MotiontuneError as e:
        print(f"motiontune: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except DivergedError as e:
        print(f"motiontune: training {e}", file=sys.stderr)
        return EXIT_DIVERGED
    except Stopped as e:
        print(f"motiontune: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("motiontune: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader stopped early (`... | head -1`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return rc or 0


if __name__ == "__main__":
    sys.exit(main())
