"""Dataset folders: clip NPZ files plus the skeleton, the bundled real mocap, the profile.

A dataset folder holds ``*.npz`` clips (see ``clip.py``), ``FullHierarchy.json``
and ``FullOffsets.json``. The package ships one, imported from the
Bandai-Namco-Research-Motiondataset (CC BY-NC 4.0, see its SOURCES.md).
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer_core.data.bvh import ImportOptions, import_bvh
from trainer_core.data.clip import Clip, load_npz, save_npz
from trainer_core.data.skeleton import HIERARCHY_FILE, OFFSETS_FILE, Skeleton
from trainer_core.errors import DataError
from trainer_core.io_utils import atomic_write_json

BUNDLED_NAME = "bandai_motion"
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
