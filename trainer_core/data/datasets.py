"""Dataset folders: clip NPZ files plus the skeleton, the bundled real mocap, the profile.

A dataset folder holds ``*.npz`` clips (see ``clip.py``), ``FullHierarchy.json``
and ``FullOffsets.json``. The package ships one, imported from the
Bandai-Namco-Research-Motiondataset (CC BY-NC 4.0, see its SOURCES.md).
"""

from __future__ import annotations

import hashlib
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer_core.data.bvh import ImportOptions, import_bvh
from trainer_core.data.clip import Clip, load_npz, save_npz
from trainer_core.config import SplitSpec
from trainer_core.errors import DataError, did_you_mean
from trainer_core.io_utils import atomic_write_json
from trainer_core.data.skeleton import HIERARCHY_FILE, OFFSETS_FILE, Skeleton

BUNDLED_NAME = "bandai_locomotion"
PROFILE_FILE = "profile.json"
OFFSET_TOLERANCE_M = 0.01  # takes of one performer differ by well under this


def bundled_dataset_dir() -> Path:
    return Path(__file__).parents[1] / "bundled" / BUNDLED_NAME


@dataclass
class Dataset:
    folder: Path
    skeleton: Skeleton
    clips: list[Clip]
    fingerprint: str  # sha256 over the skeleton and clip files, sorted by name


def load_dataset(folder: str | Path | None) -> Dataset:
    """Read every clip and the skeleton of a dataset folder (None: the bundled one)."""
    folder = Path(folder) if folder is not None else bundled_dataset_dir()
    if not folder.is_dir():
        raise DataError(f"{folder}: dataset folder not found; pass --data DIR with clip .npz files and the skeleton")
    paths = sorted(folder.glob("*.npz"))
    if not paths:
        raise DataError(
            f"{folder}: holds no .npz clips; import some with `motiontune data import-bvh FILE... --out {folder}`"
        )
    for name in (HIERARCHY_FILE, OFFSETS_FILE):
        if not (folder / name).is_file():
            raise DataError(f"{folder / name}: file not found; the skeleton must sit beside the clips")
    skeleton = Skeleton.from_files(folder)
    digest = hashlib.sha256()
    clips = []
    for p in [folder / HIERARCHY_FILE, folder / OFFSETS_FILE, *paths]:
        digest.update(p.name.encode())
        digest.update(p.read_bytes())
    for p in paths:
        clip = load_npz(p)
        if clip.n_joints != skeleton.n_joints:
            raise DataError(
                f"{p}: `rot6d` has {clip.n_joints} joints, but the skeleton in {folder} has {skeleton.n_joints}"
            )
        clips.append(clip)
    return Dataset(folder, skeleton, clips, digest.hexdigest())


def import_bvh_files(
    paths: list[Path], out: Path, options: ImportOptions | None = None, compact: bool = False
) -> Dataset:
    """Import BVH files into a dataset folder. Everything is read and checked before anything is written.

    ``compact`` writes int16 rotations and no angular velocity (see ``clip.save_npz``).
    """
    if not paths:
        raise DataError("import-bvh: no BVH files given")
    results = [import_bvh(Path(p), options or ImportOptions()) for p in paths]
    skeleton = results[0][1]
    for p, (_, sk) in zip(paths, results):
        if sk.bones != skeleton.bones or sk.parents != skeleton.parents:
            raise DataError(f"{p}: its skeleton differs from {paths[0]}'s; import clips of one skeleton per folder")
    spread = max(float(np.abs(sk.offsets - skeleton.offsets).max()) for _, sk in results)
    if spread > OFFSET_TOLERANCE_M:
        warnings.warn(
            f"bone offsets differ by up to {spread * 100:.1f} cm between the clips; the skeleton keeps "
            f"{Path(paths[0]).name}'s (import clips of one performer per folder)",
            stacklevel=2,
        )
    names = [Path(p).stem for p in paths]
    if len(set(names)) != len(names):
        raise DataError("import-bvh: two input files share a name; their clips would overwrite each other")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for (clip, _), name in zip(results, names):
        save_npz(clip, out / f"{name}.npz", compact=compact)
    skeleton.to_files(out)
    clips = [c for c, _ in results]
    atomic_write_json(out / PROFILE_FILE, dataset_profile(clips))
    return load_dataset(out)


def yaw_rate(clip: Clip) -> np.ndarray:
    """Yaw rate ``(T,)`` rad/s: wrapped backward differences of ``root_yaw``; frame 0 repeats frame 1."""
    d = np.diff(clip.root_yaw)
    d = (d + np.pi) % (2 * np.pi) - np.pi
    d = np.concatenate([d[:1], d]) if len(d) else np.zeros(1)
    return (d * clip.fps).astype(np.float32)


def dataset_profile(clips: list[Clip]) -> dict[str, float]:
    """The seed's dataset profile.

    ``yaw_mean_deg``: mean absolute heading change from each clip's first frame, degrees.
    ``speed_mean``: mean root ground speed, m/s.
    ``complexity``: mean local angular speed over joints, rad/s (higher: more articulated motion).
    """
    frames = np.array([c.n_frames for c in clips])
    yaw_dev = np.concatenate([np.abs((c.root_yaw - c.root_yaw[0] + np.pi) % (2 * np.pi) - np.pi) for c in clips])
    speed = np.concatenate([np.linalg.norm(c.root_vel, axis=-1) for c in clips])
    ang = np.concatenate([np.linalg.norm(c.angvel, axis=-1).mean(-1) for c in clips])
    fps = sorted({round(c.fps, 3) for c in clips})
    return {
        "n_clips": len(clips),
        "total_frames": int(frames.sum()),
        "avg_seq_len": round(float(frames.mean()), 2),
        "fps": fps[0] if len(fps) == 1 else fps,
        "duration_s": round(float(sum(c.n_frames / c.fps for c in clips)), 2),
        "yaw_mean_deg": round(float(np.rad2deg(yaw_dev.mean())), 3),
        "speed_mean": round(float(speed.mean()), 4),
        "speed_max": round(float(speed.max()), 4),
        "complexity": round(float(ang.mean()), 4),
    }


def _hash_order(names: list[str]) -> list[str]:
    return sorted(names, key=lambda n: hashlib.sha1(n.encode()).hexdigest())


def split_clips(clips: list[Clip], val_fraction: float, min_val_frames: int) -> tuple[list[Clip], list[Clip]]:
    """Whole clips held out for validation, chosen by a hash of their names (stable, order-free).

    Only clips of at least ``min_val_frames`` frames are eligible, so every
    validation clip holds a full free-run window.
    """
    if len(clips) < 2:
        raise DataError(f"the dataset has {len(clips)} clip(s), but training and validation need at least 2")
    eligible = [c for c in clips if c.n_frames >= min_val_frames]
    order = _hash_order([c.name for c in eligible])
    n_val = min(len(eligible), max(1, math.ceil(val_fraction * len(clips))))
    if n_val == 0 or n_val >= len(clips):
        raise DataError(
            f"no clip has the {min_val_frames} frames a validation free-run window needs; "
            "lower `eval_freerun_horizon` or add longer clips"
        )
    val_names = set(order[:n_val])
    return [c for c in clips if c.name not in val_names], [c for c in clips if c.name in val_names]


def clip_groups(clips: list[Clip], spec: SplitSpec) -> dict[str, str]:
    """Clip name -> its value of ``spec.field`` (clips whose names do not match the pattern are left out)."""
    rx = re.compile(spec.pattern)
    out = {}
    for c in clips:
        m = rx.search(c.name)
        if m and m.group(spec.field) is not None:
            out[c.name] = m.group(spec.field)
    return out


def held_out_names(clips: list[Clip], spec: SplitSpec, key: str) -> tuple[set[str], list[str]]:
    """The clip names a ``group`` or ``clips`` spec holds out, and the group values it held out."""
    names = [c.name for c in clips]
    if spec.kind == "clips":
        missing = [n for n in spec.clips if n not in names]
        if missing:
            raise DataError(
                f"`{key}.clips` names {missing[0]!r}, which is not a clip of the dataset{did_you_mean(missing[0], names)}"
            )
        return set(spec.clips), []
    groups = clip_groups(clips, spec)
    if not groups:
        raise DataError(
            f"`{key}.pattern` {spec.pattern!r} matches no clip name (e.g. {names[0]!r}); "
            f"fix the pattern or use \"hash\""
        )
    present = sorted(set(groups.values()))
    if spec.values:
        unknown = [v for v in spec.values if v not in present]
        if unknown:
            raise DataError(
                f"`{key}.values` holds {unknown[0]!r}, but the clips' `{spec.field}` values are: {', '.join(present)}"
            )
        held = list(spec.values)
    else:
        held = _hash_order(present)[: max(1, round(spec.fraction * len(present)))]
    return {n for n, g in groups.items() if g in held}, sorted(held)


@dataclass
class Splits:
    """Training, validation and (optional) test clips, and what was held out how."""

    train: list[Clip]
    val: list[Clip]
    test: list[Clip]
    held_out: dict[str, dict]  # "val"/"test" -> the spec and the group values held out


def split_dataset(
    clips: list[Clip], val_split: object, val_fraction: float, test_split: object, min_eval_frames: int
) -> Splits:
    """Hold out the test clips (if any), then the validation clips from the rest; every clip lands in one split.

    A group spec whose pattern matches no clip is an error, except for the default
    ``fraction`` form, which falls back to a hash split of clips with a warning
    (datasets named otherwise than ``content_style_take`` still train).
    """
    held: dict[str, dict] = {}
    pool = list(clips)
    test: list[Clip] = []
    if test_split is not None:
        spec = SplitSpec.parse(test_split, "test_split")
        names, values = held_out_names(pool, spec, "test_split")
        test = [c for c in pool if c.name in names]
        pool = [c for c in pool if c.name not in names]
        held["test"] = {**spec.describe(), "held_out": values, "clips": [c.name for c in test]}
        _check_eval_split(test, "test_split", min_eval_frames)
    spec = SplitSpec.parse(val_split, "val_split")
    if spec.kind == "group" and not spec.values and not clip_groups(pool, spec):
        warnings.warn(
            f"clip names carry no `{spec.field}` (pattern {spec.pattern!r}, e.g. {pool[0].name!r}); "
            f"validation holds out {val_fraction:.0%} of the clips by a hash of their names instead",
            stacklevel=2,
        )
        spec = SplitSpec("hash")
    if spec.kind == "hash":
        train, val = split_clips(pool, val_fraction, min_eval_frames)
        held["val"] = {"hash": True, "val_fraction": val_fraction, "held_out": [], "clips": [c.name for c in val]}
    else:
        names, values = held_out_names(pool, spec, "val_split")
        val = [c for c in pool if c.name in names]
        train = [c for c in pool if c.name not in names]
        held["val"] = {**spec.describe(), "held_out": values, "clips": [c.name for c in val]}
        _check_eval_split(val, "val_split", min_eval_frames)
    if not train:
        raise DataError("`val_split`/`test_split` hold out every clip; leave some groups for training")
    return Splits(train, val, test, held)


def _check_eval_split(clips: list[Clip], key: str, min_frames: int) -> None:
    if not any(c.n_frames >= min_frames for c in clips):
        raise DataError(
            f"`{key}` holds out {len(clips)} clip(s), but none has the {min_frames} frames a free-run window "
            "needs; hold out other groups or lower `eval_freerun_horizon`"
        )
