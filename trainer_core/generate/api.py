"""Entry points behind ``motiontune generate``, ``export-model`` and ``preview`` (no Ray needed).

Each checks its arguments and its output path before any heavy work, and
writes atomically, so bad input ends in one ``MotiontuneError`` and no file.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from trainer_core.data.bvh import ImportOptions, import_bvh
from trainer_core.data.clip import Clip, load_clip, save_clip
from trainer_core.data.datasets import bundled_dataset_dir, yaw_rate
from trainer_core.data.skeleton import HIERARCHY_FILE, Skeleton
from trainer_core.device import check_device
from trainer_core.errors import ConfigError, DataError
from trainer_core.generate.bvh_writer import DEFAULT_ORDER, EULER_ORDERS, write_bvh
from trainer_core.generate.control import parse_control
from trainer_core.generate.inference import SKELETON_FIX, InferenceModel, load_model
from trainer_core.generate.preview import check_preview_path, render_preview
from trainer_core.io_utils import check_suffix, check_writable

MOTION_FORMATS = ("bvh", "npz", "json")
MODEL_SUFFIXES = (".pt", ".pth")  # export-model writes a torch file
DEFAULT_PREVIEW_STRIDE = 2
# Peak memory of `generate` per generated frame and joint: the rollout's per-step tensors, the clip, its world
# positions and the written file (measured: 100,000 frames of the 21-joint bundled skeleton took 1.6 GB).
BYTES_PER_FRAME_JOINT = 800
MAX_PREVIEW_FRAME_S = 60.0  # a preview shows a frame at least once a minute (GIF frame times are 16-bit)


def available_memory() -> int | None:
    """Bytes of memory free for a new allocation (Linux's MemAvailable, else the free pages); None: unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_frames_fit(frames: int, joints: int) -> None:
    """Raise ``ConfigError`` when generating ``frames`` frames of ``joints`` joints would not fit in free memory."""
    free = available_memory()
    per_frame = BYTES_PER_FRAME_JOINT * max(1, joints)
    if free is not None and frames * per_frame > free:
        most = free // per_frame
        raise ConfigError(
            f"--frames is {frames}, but about {frames * per_frame / 1e9:.3g} GB would be needed and "
            f"{free / 1e9:.3g} GB is free: at most {most} frames of this {joints}-joint model fit; ask for fewer "
            "(or generate in parts)"
        )


def motion_format(out: Path, fmt: str | None) -> str:
    """``bvh``, ``npz`` or ``json``: ``fmt``, or the suffix of ``out``; they must agree."""
    suffix = Path(out).suffix.lower().lstrip(".")
    if fmt is not None and fmt not in MOTION_FORMATS:
        raise ConfigError(f"--format is {fmt!r}, but must be one of {', '.join(MOTION_FORMATS)}")
    if not suffix:
        raise ConfigError(f"--out {out}: has no suffix; end it in .bvh, .npz or .json (the motion's file type)")
    if suffix not in MOTION_FORMATS:
        raise ConfigError(f"--out {out}: unknown motion type `.{suffix}`; end it in .bvh, .npz or .json")
    if fmt is not None and fmt != suffix:
        raise ConfigError(f"--format is {fmt}, but --out {out} ends in .{suffix}; make them agree")
    return suffix


def load_motion(path: str | Path, skeleton_dir: str | Path | None = None,
                fps: float | None = None) -> tuple[Clip, Skeleton | None, str]:  # fmt: skip
    """A clip, its skeleton (None when a .npz/.json has none beside it and no ``skeleton_dir``) and
    the file that names the skeleton, for messages. A BVH is imported (resampled to ``fps`` if given)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".bvh":
        clip, skeleton = import_bvh(p, ImportOptions(fps=fps))
        return clip, skeleton, str(p)
    if suffix not in (".npz", ".json"):
        raise DataError(f"{p}: unknown motion type `{p.suffix}`; use a .bvh, .npz or seed .json clip")
    clip = load_clip(p)
    folder = Path(skeleton_dir) if skeleton_dir is not None else p.parent
    if (folder / HIERARCHY_FILE).is_file():
        return clip, Skeleton.from_files(folder), str(folder / HIERARCHY_FILE)
    if skeleton_dir is not None:
        raise DataError(f"{folder / HIERARCHY_FILE}: file not found; --skeleton must name a folder holding "
                        "FullHierarchy.json and FullOffsets.json")  # fmt: skip
    return clip, None, str(p)


def _model_for(checkpoint: str, start: str, device: str) -> tuple[InferenceModel, Clip, Skeleton | None, str]:
    """The model and the start clip (a BVH read at the model's frame rate), the skeletons checked."""
    clip, skeleton, where = load_motion(start)
    model = load_model(checkpoint, device, skeleton, where)
    if Path(start).suffix.lower() == ".bvh" and abs(clip.fps - model.fps) > 1e-6 * model.fps:
        clip, skeleton, where = load_motion(start, fps=model.fps)
    return model, clip, skeleton, where


def clip_stats(clip: Clip) -> dict[str, float]:
    """Mean forward/left speed (m/s) and yaw rate (deg/s) over the clip's frames after the first."""
    rate = yaw_rate(clip)[1:]
    return {
        "forward_m_s": float(np.mean(clip.root_vel[1:, 1])),
        "left_m_s": float(np.mean(clip.root_vel[1:, 0])),
        "yaw_rate_deg_s": float(np.degrees(np.mean(rate))),
        "seconds": (clip.n_frames - 1) / clip.fps,
    }


def write_motion(clip: Clip, skeleton: Skeleton, out: Path, fmt: str, order: str = DEFAULT_ORDER) -> None:
    if fmt == "bvh":
        write_bvh(clip, skeleton, out, order)
    else:
        save_clip(clip, out)


def generate(
    checkpoint: str,
    start: str,
    out: str,
    frames: int,
    control: str = "clip",
    start_frame: int = 1,
    fmt: str | None = None,
    order: str = DEFAULT_ORDER,
    device: str = "cpu",
) -> dict[str, Any]:
    """``motiontune generate``: roll a model out from a real start frame and write the motion.

    ``checkpoint``: ``best_model.pt`` / ``checkpoint_epoch_N.pt`` or an exported model. The output holds
    the start frame and ``frames`` generated frames. Returns what was written and the motion's mean
    speed and yaw rate.
    """
    if frames < 1:
        raise ConfigError(f"--frames is {frames}, but must be >= 1 (frames to generate after the start frame)")
    ctrl = parse_control(control)
    out_p = Path(out)
    kind = motion_format(out_p, fmt)
    if order not in EULER_ORDERS:
        raise ConfigError(f"--order is {order!r}, but must be one of {', '.join(EULER_ORDERS)}")
    check_device(device)
    check_writable(out_p)
    model, clip, skeleton, where = _model_for(checkpoint, start, device)
    if not 1 <= start_frame <= clip.n_frames - 1:
        raise ConfigError(
            f"--start-frame is {start_frame}, but the start clip {start} has {clip.n_frames} frames: pick one in "
            f"[1, {clip.n_frames - 1}] (frame 0 is never an input)"
        )
    check_frames_fit(frames, model.skeleton.n_joints)
    result = model.rollout(clip, frames, ctrl, start_frame, skeleton, where)
    write_motion(result, skeleton or model.skeleton, out_p, kind, order)
    return {
        "out": str(out_p),
        "format": kind,
        "frames": result.n_frames,
        "fps": result.fps,
        "control": ctrl.describe(),
        "start": f"{start} frame {start_frame}",
        **clip_stats(result),
    }


def export_model(checkpoint: str, out: str, skeleton_dir: str | None = None, device: str = "cpu") -> dict[str, Any]:
    """``motiontune export-model``: weights and what inference needs, in one ``weights_only`` file."""
    out_p = Path(out)
    check_suffix(out_p, MODEL_SUFFIXES, kind="torch model file")
    check_device(device)
    check_writable(out_p)
    skeleton, where = None, ""
    if skeleton_dir is not None:
        folder = Path(skeleton_dir)
        if not (folder / HIERARCHY_FILE).is_file():
            raise DataError(f"{folder / HIERARCHY_FILE}: file not found; --skeleton must name a folder holding "
                            "FullHierarchy.json and FullOffsets.json")  # fmt: skip
        skeleton, where = Skeleton.from_files(folder), str(folder / HIERARCHY_FILE)
    model = InferenceModel.from_checkpoint(checkpoint, device, skeleton, where, SKELETON_FIX)
    model.export(out_p)
    return {
        "out": str(out_p),
        "bytes": out_p.stat().st_size,
        "epoch": model.epoch,
        "joints": model.skeleton.n_joints,
        "fps": model.fps,
        "parameters": sum(p.numel() for p in model.model.parameters()),
    }


def preview(
    motion: str,
    out: str,
    compare: str | None = None,
    skeleton_dir: str | None = None,
    stride: int = DEFAULT_PREVIEW_STRIDE,
) -> dict[str, Any]:
    """``motiontune preview``: a skeleton animation of ``motion`` (beside ``compare``), a .gif or .mp4."""
    out_p = Path(out)
    check_preview_path(out_p)
    if stride < 1:
        raise ConfigError(f"--stride is {stride}, but must be >= 1")
    check_writable(out_p)
    panels = []
    for path in [motion] + ([compare] if compare else []):
        clip, skeleton, _ = load_motion(path, skeleton_dir)
        if skeleton is None:
            raise DataError(f"{path}: no FullHierarchy.json beside the clip; pass --skeleton DIR (the clip's "
                            f"dataset folder, e.g. {bundled_dataset_dir()})")  # fmt: skip
        panels.append((Path(path).stem, clip, skeleton))
    n_frames, fps = min(c.n_frames for _, c, _ in panels), panels[0][1].fps
    most = max(1, min(n_frames, int(MAX_PREVIEW_FRAME_S * fps)))
    if stride > most:
        raise ConfigError(f"--stride is {stride}, but must be in [1, {most}]: at most the motion's {n_frames} frames "
                          f"and a frame a minute at {fps:g} fps")  # fmt: skip
    if compare and abs(panels[0][1].fps - panels[1][1].fps) > 1e-3 * panels[0][1].fps:
        raise DataError(f"{compare}: runs at {panels[1][1].fps:g} fps, but {motion} at {panels[0][1].fps:g}; "
                        "compare motions of one frame rate")  # fmt: skip
    n = render_preview(panels, out_p, stride)
    return {"out": str(out_p), "frames": n, "stride": stride, "source_frames": min(c.n_frames for _, c, _ in panels)}


def rollout_preview(checkpoint: str | Path, clip: Clip, skeleton: Skeleton, out: Path, max_seconds: float = 10.0,
                    stride: int = 3, model: InferenceModel | None = None) -> dict[str, Any]:  # fmt: skip
    """A free-run rollout of ``clip`` under its own control from its second frame, beside the ground truth
    over the same frames (at most ``max_seconds``), as a preview at ``out``. ``model``: the checkpoint's,
    when already loaded."""
    model = model or InferenceModel.from_checkpoint(checkpoint, "cpu", skeleton, "")
    steps = max(1, min(clip.n_frames - 2, int(math.ceil(max_seconds * clip.fps))))
    generated = model.rollout(clip, steps, "clip", 1, skeleton)
    keys = ("rot6d", "angvel", "root_yaw", "root_vel", "soft_contacts")
    truth = Clip(*(getattr(clip, k)[1 : steps + 2] for k in keys), fps=clip.fps, name=clip.name)
    n = render_preview([("free run", generated, skeleton), ("ground truth", truth, skeleton)], out, stride,
                       title=clip.name)  # fmt: skip
    return {"out": str(out), "frames": n, "clip": clip.name, "rollout_frames": steps}


def check_previews_folder(folder: Path) -> None:
    """Raise ``ConfigError`` unless previews can be written into ``folder`` (made if missing)."""
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--previews {folder}: is a file, but must be a folder")
    check_writable(folder / "preview.gif", "--previews")


def clip_previews(checkpoint: str | Path, data: str | Path | None, folder: str | Path, max_seconds: float = 10.0,
                  stride: int = 3) -> list[dict[str, Any]]:  # fmt: skip
    """``eval --previews DIR``: for every clip of a dataset folder long enough to roll out, its free run beside
    the ground truth, ``DIR/<clip>.gif``."""
    from trainer_core.data.datasets import load_dataset

    folder = Path(folder)
    check_previews_folder(folder)
    dataset = load_dataset(data)
    model = InferenceModel.from_checkpoint(checkpoint, "cpu", dataset.skeleton, str(dataset.folder / HIERARCHY_FILE))
    return [
        rollout_preview(checkpoint, clip, dataset.skeleton, folder / f"{clip.name}.gif", max_seconds, stride, model)
        for clip in dataset.clips
        if clip.n_frames >= 3
    ]
