"""One motion clip: the training NPZ and the seed's JSON clip format.

Arrays (T frames, J joints), float32:

============== =========== =================================================
key            shape       meaning
============== =========== =================================================
rot6d          (T, J, 6)   local rotations (root: relative to the heading frame)
angvel         (T, J, 3)   local angular velocity, rad/s (axis-angle per second)
root_yaw       (T,)        heading about +Y, radians
root_vel       (T, 2)      root ground velocity in the heading frame, m/s: [left, forward]
soft_contacts  (T, 2)      soft foot contact in [0, 1]: [L, R]
fps            ()          frames per second
============== =========== =================================================

A *compact* NPZ (``save_npz(..., compact=True)``; the bundled dataset uses it)
stores ``rot6d`` as int16 (``rot6d_q``, value x 32767: under 0.002 degrees of
error), ``soft_contacts`` as float16, and no ``angvel``, which is recomputed
from the rotations on load. ``load_npz`` reads both forms.

The seed JSON clip stores per frame ``RootYaw`` (radians), ``RootVelocityXY``
(= ``root_vel``), ``BoneRotations`` (6D per bone) and ``FootEvidence``;
``angvel`` is recomputed from the rotations on conversion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainer_core.errors import DataError, raise_all
from trainer_core.geometry import matrix_to_rot6d, rot6d_to_matrix, so3_log
from trainer_core.io_utils import atomic_write, atomic_write_json, read_json

ARRAY_KEYS = ("rot6d", "angvel", "root_yaw", "root_vel", "soft_contacts")
ROT6D_Q_SCALE = 32767.0  # rot6d entries lie in [-1, 1]


@dataclass
class Clip:
    rot6d: np.ndarray
    angvel: np.ndarray
    root_yaw: np.ndarray
    root_vel: np.ndarray
    soft_contacts: np.ndarray
    fps: float
    name: str = ""

    @property
    def n_frames(self) -> int:
        return int(self.rot6d.shape[0])

    @property
    def n_joints(self) -> int:
        return int(self.rot6d.shape[1])

    def validate(self, where: str) -> None:
        """Shapes agree, values are finite, fps is positive; raise one DataError naming ``where``."""
        problems = []
        if self.rot6d.ndim != 3 or self.rot6d.shape[-1] != 6:
            problems.append(f"`rot6d` has shape {self.rot6d.shape}, but must be (T, J, 6)")
            raise_all(problems, DataError, where)  # raises now: the checks below need (T, J, 6)
        T, J = self.rot6d.shape[:2]
        expected = {"angvel": (T, J, 3), "root_yaw": (T,), "root_vel": (T, 2), "soft_contacts": (T, 2)}
        for key, shape in expected.items():
            arr = getattr(self, key)
            if arr.shape != shape:
                problems.append(
                    f"`{key}` has shape {arr.shape}, but must be {shape} to match `rot6d` {self.rot6d.shape}"
                )
        for key in ARRAY_KEYS:
            arr = getattr(self, key)
            if arr.size and not np.isfinite(arr).all():
                bad = np.argwhere(~np.isfinite(arr))[0]
                problems.append(
                    f"`{key}` holds NaN/inf (first at index {tuple(int(i) for i in bad)}); re-export the clip"
                )
        if not (math.isfinite(self.fps) and self.fps > 0):
            problems.append(f"`fps` is {self.fps}, but must be a positive number")
        if T < 2:
            problems.append(f"clip has {T} frame(s), but at least 2 are needed for next-frame prediction")
        if self.soft_contacts.size and (self.soft_contacts.min() < -1e-6 or self.soft_contacts.max() > 1 + 1e-6):
            problems.append("`soft_contacts` must lie in [0, 1]")
        raise_all(problems, DataError, where)


def angular_velocity(rot6d: np.ndarray, fps: float) -> np.ndarray:
    """Local angular velocity ``(T, J, 3)`` rad/s from rotations ``(T, J, 6)``.

    Backward differences ``log(R[t-1]^T R[t]) * fps``; frame 0 repeats frame 1.
    """
    R = rot6d_to_matrix(torch.as_tensor(rot6d, dtype=torch.float64))
    w = so3_log(R[:-1].transpose(-1, -2) @ R[1:]) * fps
    w = torch.cat((w[:1], w), dim=0) if len(w) else torch.zeros_like(R[..., 0])
    return w.numpy().astype(np.float32)


def save_npz(clip: Clip, path: Path, compact: bool = False) -> None:
    clip.validate(str(path))
    if compact:
        arrays = {
            "rot6d_q": np.round(np.clip(clip.rot6d, -1.0, 1.0) * ROT6D_Q_SCALE).astype(np.int16),
            "root_yaw": np.asarray(clip.root_yaw, dtype=np.float32),
            "root_vel": np.asarray(clip.root_vel, dtype=np.float32),
            "soft_contacts": np.asarray(clip.soft_contacts, dtype=np.float16),
        }
    else:
        arrays = {k: np.asarray(getattr(clip, k), dtype=np.float32) for k in ARRAY_KEYS}
    arrays["fps"] = np.asarray(clip.fps, dtype=np.float32)
    atomic_write(Path(path), lambda f: np.savez_compressed(f, **arrays))


def _dequantize(rot6d_q: np.ndarray) -> np.ndarray:
    """int16 6D rotations -> float32 6D of exact rotations (re-orthonormalised)."""
    raw = torch.from_numpy(rot6d_q.astype(np.float64) / ROT6D_Q_SCALE)
    return matrix_to_rot6d(rot6d_to_matrix(raw)).float().numpy()


def load_npz(path: Path) -> Clip:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found; check the path")
    try:
        with np.load(path, allow_pickle=False) as z:
            compact = "rot6d_q" in z.files
            need = ("rot6d_q", "root_yaw", "root_vel", "soft_contacts") if compact else ARRAY_KEYS
            missing = [k for k in (*need, "fps") if k not in z.files]
            if missing:
                raise DataError(
                    f"{path}: missing array(s) {', '.join(missing)}; convert the clip with `motiontune data convert`"
                )
            arrays = {k: np.asarray(z[k], dtype=np.float32) for k in need if k != "rot6d_q"}
            fps = float(z["fps"])
            if compact:
                if z["rot6d_q"].ndim != 3 or z["rot6d_q"].shape[-1] != 6:
                    raise DataError(f"{path}: `rot6d_q` has shape {z['rot6d_q'].shape}, but must be (T, J, 6)")
                arrays["rot6d"] = _dequantize(np.asarray(z["rot6d_q"]))
                arrays["angvel"] = angular_velocity(arrays["rot6d"], fps) if fps > 0 else arrays["rot6d"][..., :3]
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - truncated or foreign: OSError, zip and zlib errors, bad shapes...
        # numpy's own message advises loading with allow_pickle=True (running what the file holds): never passed on
        if "allow_pickle" in str(e):
            raise DataError(f"{path}: holds Python objects (object arrays), which motiontune never loads; "
                            "re-import or re-convert the clip") from None  # fmt: skip
        raise DataError(f"{path}: not a readable NPZ file: it is truncated or not a clip motiontune wrote; "
                        "re-import or re-convert it") from None  # fmt: skip
    clip = Clip(**arrays, fps=fps, name=path.stem)
    clip.validate(str(path))
    return clip


def clip_to_json(clip: Clip) -> dict:
    frames = []
    for t in range(clip.n_frames):
        frames.append(
            {
                "RootYaw": float(clip.root_yaw[t]),
                "RootVelocityXY": [float(v) for v in clip.root_vel[t]],
                "BoneRotations": np.round(clip.rot6d[t].astype(np.float64), 7).tolist(),
                "FootEvidence": {
                    "L": {"soft_contact_score": float(clip.soft_contacts[t, 0])},
                    "R": {"soft_contact_score": float(clip.soft_contacts[t, 1])},
                },
            }
        )
    return {"FPS": clip.fps, "Frames": frames}


def clip_from_json(obj: object, where: str) -> Clip:
    """Parse the seed's JSON clip; every problem names the frame and field."""
    if not isinstance(obj, dict):
        raise DataError(f"{where}: must hold a JSON object with `FPS` and `Frames`")
    for key in ("FPS", "Frames"):
        if key not in obj:
            raise DataError(f"{where}: missing key `{key}`")
    frames = obj["Frames"]
    if not isinstance(frames, list) or not frames:
        raise DataError(f"{where}: `Frames` must be a non-empty list")
    try:
        fps = float(obj["FPS"])
    except (TypeError, ValueError):
        raise DataError(f"{where}: `FPS` is {obj['FPS']!r}, but must be a number") from None
    cols: dict[str, list] = {"yaw": [], "vel": [], "rot": [], "cl": [], "cr": []}
    for t, fr in enumerate(frames):
        at = f"{where}: Frames[{t}]"
        if not isinstance(fr, dict):
            raise DataError(f"{at}: must be an object")
        for key in ("RootYaw", "RootVelocityXY", "BoneRotations", "FootEvidence"):
            if key not in fr:
                raise DataError(f"{at}: missing key `{key}`")
        try:
            cols["yaw"].append(float(fr["RootYaw"]))
            cols["vel"].append(np.asarray(fr["RootVelocityXY"], dtype=np.float64))
            cols["rot"].append(np.asarray(fr["BoneRotations"], dtype=np.float64))
            cols["cl"].append(float(fr["FootEvidence"]["L"]["soft_contact_score"]))
            cols["cr"].append(float(fr["FootEvidence"]["R"]["soft_contact_score"]))
        except (TypeError, ValueError, KeyError) as e:
            raise DataError(f"{at}: malformed value ({type(e).__name__}: {e})") from None
        if cols["vel"][-1].shape != (2,):
            raise DataError(f"{at}.RootVelocityXY: has shape {cols['vel'][-1].shape}, but must be (2,)")
        rot = cols["rot"][-1]
        if rot.ndim != 2 or rot.shape[1] != 6 or rot.shape[0] != cols["rot"][0].shape[0]:
            raise DataError(
                f"{at}.BoneRotations: has shape {rot.shape}, but must be (J, 6) with the same J in every frame"
            )
    rot6d = np.stack(cols["rot"]).astype(np.float32)
    if not np.isfinite(rot6d).all():
        t = int(np.argwhere(~np.isfinite(rot6d))[0][0])
        raise DataError(f"{where}: Frames[{t}].BoneRotations holds NaN/inf; re-export the clip")
    if not math.isfinite(fps) or fps <= 0:
        raise DataError(f"{where}: `FPS` is {fps}, but must be a positive number")
    # Re-orthonormalise: JSON exporters round, and downstream math assumes rotations.
    rot6d = matrix_to_rot6d(rot6d_to_matrix(torch.from_numpy(rot6d).double())).float().numpy()
    clip = Clip(
        rot6d=rot6d,
        angvel=angular_velocity(rot6d, fps),
        root_yaw=np.asarray(cols["yaw"], dtype=np.float32),
        root_vel=np.stack(cols["vel"]).astype(np.float32),
        soft_contacts=np.stack([cols["cl"], cols["cr"]], axis=1).astype(np.float32),
        fps=fps,
        name=Path(where).stem,
    )
    clip.validate(where)
    return clip


def load_clip(path: Path) -> Clip:
    """A clip from ``.npz`` or the seed's ``.json``."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        return clip_from_json(read_json(path), str(path))
    if path.suffix.lower() == ".npz":
        return load_npz(path)
    raise DataError(f"{path}: unknown clip type `{path.suffix}`; use a .npz or a seed .json clip")


def save_clip(clip: Clip, path: Path) -> None:
    """Write ``.npz`` or the seed's ``.json`` by the suffix of ``path``."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        clip.validate(str(path))
        atomic_write_json(path, clip_to_json(clip))
    elif path.suffix.lower() == ".npz":
        save_npz(clip, path)
    else:
        raise DataError(f"{path}: unknown output type `{path.suffix}`; use .npz or .json")


__all__ = ["Clip", "angular_velocity", "load_clip", "save_clip", "load_npz", "save_npz"]
