"""``generate``, ``export-model`` and ``preview``: motion out of a trained model."""

from __future__ import annotations

import argparse


def _gen_api():  # noqa: ANN202 - imported on use (matplotlib, torch)
    from trainer_core.generate import api

    return api


def _generate(a: argparse.Namespace) -> int:
    r = _gen_api().generate(a.checkpoint, a.start, a.out, a.frames, a.control, a.start_frame, a.format, a.order,
                            a.device)  # fmt: skip
    print(f"generated {r['frames'] - 1} frames ({r['seconds']:.1f} s at {r['fps']:g} fps) after {r['start']}, "
          f"control {r['control']}: forward {r['forward_m_s']:.2f} m/s, left {r['left_m_s']:.2f} m/s, "
          f"yaw rate {r['yaw_rate_deg_s']:.1f} deg/s -> {r['out']}")  # fmt: skip
    return 0


def _export_model(a: argparse.Namespace) -> int:
    r = _gen_api().export_model(a.checkpoint, a.out, a.skeleton, a.device)
    print(f"exported the model of epoch {r['epoch']} ({r['parameters']} parameters, {r['joints']} joints, "
          f"{r['fps']:g} fps) -> {r['out']}; load it with trainer_core.generate.inference.load_model")  # fmt: skip
    return 0


def _preview(a: argparse.Namespace) -> int:
    r = _gen_api().preview(a.motion, a.out, a.compare, a.skeleton, a.stride)
    print(f"preview: {r['frames']} frames (every {r['stride']} of {r['source_frames']}) -> {r['out']}")
    return 0


def add_generate(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser("generate", help="roll a trained model out from a real start frame into a BVH or clip",
                       description="Generate motion: roll a model out autoregressively from a real frame of a "
                                   "start clip, driven by the clip's own control or a constant speed and turn, "
                                   "and write it as BVH (the dataset's skeleton) or as a .npz/.json clip.")  # fmt: skip
    g.add_argument("checkpoint", metavar="CHECKPOINT", help="best_model.pt, checkpoint_epoch_N.pt or an exported model")
    g.add_argument("--start", required=True, metavar="CLIP",
                   help="start clip: .npz or seed .json (skeleton files beside it), or .bvh")  # fmt: skip
    g.add_argument("--start-frame", type=int, default=1, metavar="F", help="the real frame to start from (default 1)")
    g.add_argument("--frames", type=int, required=True, metavar="N", help="frames to generate after the start frame")
    g.add_argument("--control", default="clip", metavar="clip|SPEED,TURN_DEG_S",
                   help="clip: the start clip's own (the last held past its end); or forward m/s and turn deg/s "
                        "(positive: left), e.g. 1.2,30; a negative speed as --control=-1,0 (default clip)")  # fmt: skip
    g.add_argument("--out", required=True, metavar="FILE", help="motion.bvh, .npz or .json")
    g.add_argument("--format", choices=["bvh", "npz", "json"], help="must agree with --out's suffix (default: it)")
    g.add_argument("--order", default="ZXY", help="BVH rotation channel order, e.g. ZXY (default) or ZYX")
    g.add_argument("--device", default="cpu", help="cpu (default), auto, cuda or cuda:N")
    g.set_defaults(func=_generate)
    e = sub.add_parser("export-model", help="a checkpoint's weights and what inference needs, in one file",
                       description="Export a model for inference: weights (no optimizer), architecture, "
                                   "normalizer, skeleton and config, loadable with torch.load(weights_only=True) "
                                   "and by trainer_core.generate.inference.load_model.")  # fmt: skip
    e.add_argument("checkpoint", metavar="CHECKPOINT", help="best_model.pt or checkpoint_epoch_N.pt")
    e.add_argument("--out", required=True, metavar="FILE.pt")
    e.add_argument("--skeleton", metavar="DIR", help="folder of the skeleton files (default: the training data's)")
    e.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    e.set_defaults(func=_export_model)
    p = sub.add_parser("preview", help="a skeleton animation (GIF, or MP4 with ffmpeg) of a motion",
                       description="Render a motion as a skeleton animation; with --compare, beside another "
                                   "(e.g. the ground truth). The camera follows the root.")  # fmt: skip
    p.add_argument("motion", metavar="MOTION", help="a .bvh, or a .npz/.json clip (skeleton beside it or --skeleton)")
    p.add_argument("--compare", metavar="OTHER", help="a second motion drawn beside the first")
    p.add_argument("--out", required=True, metavar="FILE", help="preview.gif or preview.mp4")
    p.add_argument("--skeleton", metavar="DIR", help="folder of the skeleton files, for .npz/.json clips")
    p.add_argument("--stride", type=int, default=2, metavar="K", help="draw every K-th frame (default 2)")
    p.set_defaults(func=_preview)
