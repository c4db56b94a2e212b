"""``train``, ``eval`` and ``data``: one model, its evaluation, its data."""

from __future__ import annotations

import argparse
import sys

from tuner.cli.advanced_cmds import add_advanced_train_flags, advanced_options
from tuner.cli.common import Parser, print_json, trainer_api

# --- train -------------------------------------------------------------------------------


def add_train(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--smoke-test", action="store_true", help="a tiny model for 4 short epochs (seconds)")
    add_advanced_train_flags(p)

    def run(a: argparse.Namespace) -> int:
        summary = trainer_api().train(
            a.config, a.data, a.out, a.epochs, a.device, a.sets, a.resume, a.smoke_test, advanced_options(a)
        )
        best = summary["best"]
        print(
            f"done: best {summary['objective']} {best['value']:.4f} at epoch {best['epoch']}; "
            f"baseline (copy last frame) {summary['baseline'].get(summary['objective'], float('nan')):.4f}"
        )
        return 0

    p.set_defaults(func=run)


# --- eval --------------------------------------------------------------------------------


def add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="a trained model's metrics on any dataset folder, beside copy-last-frame",
                       description="Teacher and free-run metrics of a checkpoint on every clip of a dataset folder "
                                   "(the model's skeleton), per clip and overall, against the baselines.")  # fmt: skip
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="best_model.pt or checkpoint_epoch_N.pt")
    p.add_argument("--data", required=True, metavar="DIR", help="dataset folder of clip .npz files and the skeleton")
    p.add_argument("--horizon", type=int, help="free-run frames per window (default: the checkpoint's config's)")
    p.add_argument("--out", metavar="FILE.json", help="write every number as JSON")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: the checkpoint's config's)")
    p.add_argument("--long", type=float, metavar="SECONDS", help="also FreeRun/long: SECONDS-long rollouts per clip")
    p.add_argument("--previews", metavar="DIR", help="write each clip's free run beside its ground truth, DIR/CLIP.gif")

    def run(a: argparse.Namespace) -> int:
        from trainer_core.evaluate.offline import format_table

        scores = trainer_api().evaluate(a.checkpoint, a.data, a.horizon, a.out, a.device, a.long, a.previews)
        print(format_table(scores))
        if a.out:
            print(f"\nwritten: {a.out}")
        return 0

    p.set_defaults(func=run)


# --- data --------------------------------------------------------------------------------


def add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="import, convert and profile motion data", description="Motion data tools.")
    dsub = p.add_subparsers(dest="data_cmd", required=True, parser_class=Parser)

    imp = dsub.add_parser("import-bvh", help="BVH files -> a dataset folder (clips .npz + skeleton)")
    imp.add_argument("files", nargs="+", metavar="FILE")
    imp.add_argument("--out", required=True, help="dataset folder to write")
    imp.add_argument(
        "--scale", type=float, help="metres per file unit (default: from the legs' length: m, cm, mm, inches, CMU...)"
    )
    imp.add_argument("--up", default="auto", help="the files' up axis: y, z or auto (default: from the pose)")
    imp.add_argument("--root-joint", help="the hips joint (default: the first joint with several children)")
    imp.add_argument("--feet", metavar="LEFT,RIGHT", help="foot joint names (default: found by name)")
    imp.add_argument("--fps", type=float, help="resample to this frame rate (default: the files' own)")
    imp.add_argument(
        "--compact", action="store_true", help="int16 rotations, no stored angular velocity (about 3x smaller files)"
    )

    def _import_bvh(a: argparse.Namespace) -> None:
        report = trainer_api().import_bvh(a.files, a.out, a.scale, a.up, a.root_joint, a.feet, a.fps, a.compact)
        u = report["import"]
        rate = f"{u['source_fps']:g} fps" + (f" resampled to {report['fps']:g}" if a.fps is not None else "")
        print(
            f"motiontune: import-bvh: scale {u['scale']:g} m per unit ({u['reason']}); "
            f"up {u['up']} ({u['up_from']}); {rate}",
            file=sys.stderr,
        )
        print_json(report)

    imp.set_defaults(func=_import_bvh)

    conv = dsub.add_parser("convert", help="seed JSON clip <-> training NPZ")
    conv.add_argument("src", metavar="CLIP")
    conv.add_argument("--out", required=True, help="output .npz or .json")
    conv.set_defaults(func=lambda a: print_json(trainer_api().convert(a.src, a.out)))

    prof = dsub.add_parser("profile", help="print the dataset profile as JSON")
    prof.add_argument("folder", nargs="?", metavar="DIR", help="dataset folder (default: bundled mocap)")
    prof.set_defaults(func=lambda a: print_json(trainer_api().profile(a.folder)))
