"""The ``motiontune`` command line. Commands are thin: parse options, make one library call.

Library code raises ``MotiontuneError`` for bad input; only this module turns it
into one line on stderr and exit code 2. Ray is imported only by the commands
that need it, so ``train`` and ``data`` run without it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (exit code 2) and options are never abbreviated."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    print(f"motiontune: warning: {message}", file=sys.stderr)


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2))


def _api():  # noqa: ANN202 - imported on use so `motiontune --help` stays fast
    from trainer_core import api

    return api


# --- train -------------------------------------------------------------------------------


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one model locally (no Ray)", description="Train one model locally.")
    p.add_argument("--config", help="config JSON in the seed's format (default: the packaged exp_phase_mpl.json)")
    p.add_argument("--data", help="dataset folder of clip .npz files and the skeleton (default: bundled mocap)")
    p.add_argument("--out", help="output folder (default: results/runs/<config>-<time>)")
    p.add_argument("--epochs", type=int, help="train this many epochs; stage ranges and TF epochs are rescaled")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: the config's, auto)")
    p.add_argument(
        "--set", dest="sets", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)"
    )
    p.add_argument(
        "--resume", metavar="CHECKPOINT", help="continue from checkpoint_epoch_N.pt (config from the checkpoint)"
    )

    def run(a: argparse.Namespace) -> int:
        summary = _api().train(a.config, a.data, a.out, a.epochs, a.device, a.sets, a.resume)
        best = summary["best"]
        print(
            f"done: best {summary['objective']} {best['value']:.4f} at epoch {best['epoch']}; "
            f"baseline (copy last frame) {summary['baseline'].get(summary['objective'], float('nan')):.4f}"
        )
        return 0

    p.set_defaults(func=run)


# --- data --------------------------------------------------------------------------------


def _add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="import, convert and profile motion data", description="Motion data tools.")
    dsub = p.add_subparsers(dest="data_cmd", required=True, parser_class=_Parser)

    imp = dsub.add_parser("import-bvh", help="BVH files -> a dataset folder (clips .npz + skeleton)")
    imp.add_argument("files", nargs="+", metavar="FILE")
    imp.add_argument("--out", required=True, help="dataset folder to write")
    imp.add_argument("--scale", type=float, help="file units -> metres (default: auto, centimetres or metres)")
    imp.add_argument("--up", default="y", help="the files' up axis: y (default) or z")
    imp.add_argument("--root-joint", help="the hips joint (default: the first joint with several children)")
    imp.add_argument("--feet", metavar="LEFT,RIGHT", help="foot joint names (default: found by name)")
    imp.set_defaults(func=lambda a: _print_json(_api().import_bvh(a.files, a.out, a.scale, a.up, a.root_joint, a.feet)))

    conv = dsub.add_parser("convert", help="seed JSON clip <-> training NPZ")
    conv.add_argument("src", metavar="CLIP")
    conv.add_argument("--out", required=True, help="output .npz or .json")
    conv.set_defaults(func=lambda a: _print_json(_api().convert(a.src, a.out)))

    prof = dsub.add_parser("profile", help="print the dataset profile as JSON")
    prof.add_argument("folder", nargs="?", metavar="DIR", help="dataset folder (default: bundled mocap)")
    prof.set_defaults(func=lambda a: _print_json(_api().profile(a.folder)))


# --- space -------------------------------------------------------------------------------


def _space_show(a: argparse.Namespace) -> int:
    from search_spaces.sampling import space_table
    from search_spaces.spec import load_space

    print(space_table(load_space(a.space)))
    return 0


def _space_sample(a: argparse.Namespace) -> int:
    from search_spaces.sampling import sample_configs
    from search_spaces.spec import load_space
    from trainer_core.config import load_config
    from trainer_core.errors import ConfigError

    if a.n < 1:
        raise ConfigError(f"-n is {a.n}, but must be >= 1")
    space, base = load_space(a.space), load_config(a.config)
    for cfg in sample_configs(space, a.n, a.seed, base):
        print(json.dumps(cfg.to_dict()), flush=True)
    return 0


def _add_space(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("space", help="show search spaces and sample configs from them", description="Search spaces.")
    ssub = p.add_subparsers(dest="space_cmd", required=True, parser_class=_Parser)
    space_help = "a shipped space (default, small, wide) or a space .json file (default: default)"
    show = ssub.add_parser("show", help="the space's dimensions, bounds, scales and fixed values")
    show.add_argument("--space", default="default", help=space_help)
    show.set_defaults(func=_space_show)
    sample = ssub.add_parser("sample", help="N full trainer configs, one JSON object per line")
    sample.add_argument("--space", default="default", help=space_help)
    sample.add_argument("-n", type=int, default=1, help="how many configs (default 1)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--config", help="base config (default: the packaged exp_phase_mpl.json)")
    sample.set_defaults(func=_space_sample)


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_train, _add_data, _add_space]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="motiontune", description="Hyperparameter search for a character-motion model.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from trainer_core.errors import DivergedError, MotiontuneError

    warnings.showwarning = _show_warning
    args = build_parser().parse_args(argv)
    try:
        rc = args.func(args)
    except MotiontuneError as e:
        print(f"motiontune: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except DivergedError as e:
        print(f"motiontune: training {e}", file=sys.stderr)
        return EXIT_DIVERGED
    except KeyboardInterrupt:
        print("motiontune: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader stopped early (`... | head -1`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return rc or 0


if __name__ == "__main__":
    sys.exit(main())
