"""Per-frame feature layout and the normalizer bundle.

One ``FrameLayout`` packs and unpacks the model's input vector; no code slices
features by hand-written offsets. The frame features of frame ``t`` are its pose
and motion state; the condition (the control signal) is what the user steers with.

Frame features (``J`` joints), in order::

    rot6d (J*6)  angvel (J*3)  root_vel (2)  yaw_rate (1)  contacts (2)  phase (2: cos, sin)

Condition::

    ctrl_vel (2)  ctrl_yaw_rate (1)  log_period (1)

``ctrl_*`` is the mean root velocity / yaw rate over the next ``cond_window_s``
seconds; ``log_period`` is the soft gait period (seconds, log) from the soft contacts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from trainer_core.errors import DataError
from trainer_core.io_utils import atomic_write_json, read_json

STD_FLOOR = 1e-2  # features are O(1) (unitless, rad/s, m/s): a smaller std is a constant


def frame_segments(n_joints: int) -> tuple[tuple[str, int], ...]:
    J = n_joints
    return (("rot6d", J * 6), ("angvel", J * 3), ("root_vel", 2), ("yaw_rate", 1), ("contacts", 2), ("phase", 2))


COND_SEGMENTS: tuple[tuple[str, int], ...] = (("ctrl_vel", 2), ("ctrl_yaw_rate", 1), ("log_period", 1))


@dataclass(frozen=True)
class Layout:
    """Named contiguous segments of a feature vector."""

    segments: tuple[tuple[str, int], ...]

    @property
    def dim(self) -> int:
        return sum(n for _, n in self.segments)

    def slices(self) -> dict[str, slice]:
        out, i = {}, 0
        for name, n in self.segments:
            out[name] = slice(i, i + n)
            i += n
        return out

    def pack(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        """``{name: (..., *shape)}`` -> ``(..., dim)``; each part's trailing dims flatten to its segment."""
        flat = [parts[name].flatten(-_trailing(parts[name], n)) for name, n in self.segments]
        return torch.cat(flat, dim=-1)

    def unpack(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: x[..., s] for name, s in self.slices().items()}


def _trailing(p: torch.Tensor, n: int) -> int:
    """How many trailing dims of ``p`` multiply to ``n`` (1 for (..., n), 2 for (..., J, 6))."""
    size = 1
    for k in range(1, p.dim() + 1):
        size *= p.shape[-k]
        if size == n:
            return k
    raise ValueError(f"part of shape {tuple(p.shape)} does not end in a block of {n} values")


def frame_layout(n_joints: int) -> Layout:
    return Layout(frame_segments(n_joints))


COND_LAYOUT = Layout(COND_SEGMENTS)


@dataclass
class Normalizer:
    """Per-feature mean/std of frame features and condition, from the training split only."""

    x_mean: torch.Tensor
    x_std: torch.Tensor
    c_mean: torch.Tensor
    c_std: torch.Tensor
    layout: Layout

    @classmethod
    def fit(cls, x: torch.Tensor, c: torch.Tensor, layout: Layout) -> Normalizer:
        """From raw features ``x (F, D)`` and condition ``c (F, Dc)`` of the training frames."""
        x, c = x.double(), c.double()
        return cls(
            x.mean(0).float(),
            x.std(0).clamp_min(STD_FLOOR).float(),
            c.mean(0).float(),
            c.std(0).clamp_min(STD_FLOOR).float(),
            layout,
        )

    def to(self, device: torch.device) -> Normalizer:
        return Normalizer(
            self.x_mean.to(device), self.x_std.to(device), self.c_mean.to(device), self.c_std.to(device), self.layout
        )

    def norm_x(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.x_mean) / self.x_std

    def norm_c(self, c: torch.Tensor) -> torch.Tensor:
        return (c - self.c_mean) / self.c_std

    def segment_stats(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.layout.slices()[name]
        return self.x_mean[s], self.x_std[s]

    def traj_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std ``(3,)`` of the root trajectory ``[root_vel (2), yaw_rate (1)]``."""
        (vm, vs), (ym, ys) = self.segment_stats("root_vel"), self.segment_stats("yaw_rate")
        return torch.cat([vm, ym]), torch.cat([vs, ys])

    def to_dict(self) -> dict:
        def seg(layout: Layout, mean: torch.Tensor, std: torch.Tensor) -> dict:
            return {name: {"mean": mean[s].tolist(), "std": std[s].tolist()} for name, s in layout.slices().items()}

        return {
            "version": 1,
            "features": seg(self.layout, self.x_mean, self.x_std),
            "cond": seg(COND_LAYOUT, self.c_mean, self.c_std),
        }

    @classmethod
    def from_dict(cls, obj: dict, layout: Layout, where: str) -> Normalizer:
        try:
            parts = []
            for key, lay in (("features", layout), ("cond", COND_LAYOUT)):
                mean = torch.cat([torch.tensor(obj[key][n]["mean"], dtype=torch.float32) for n, _ in lay.segments])
                std = torch.cat([torch.tensor(obj[key][n]["std"], dtype=torch.float32) for n, _ in lay.segments])
                if mean.shape != (lay.dim,) or std.shape != (lay.dim,):
                    raise DataError(
                        f"{where}: `{key}` has {mean.shape[0]} values, but this skeleton needs {lay.dim}; "
                        "the bundle belongs to another skeleton"
                    )
                if not (torch.isfinite(mean).all() and torch.isfinite(std).all() and (std > 0).all()):
                    raise DataError(f"{where}: `{key}` holds NaN/inf or a non-positive std")
                parts += [mean, std]
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"{where}: not a normalizer bundle (missing or malformed {e})") from None
        return cls(*parts, layout)

    def save(self, path: Path) -> None:
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: Path, layout: Layout) -> Normalizer:
        return cls.from_dict(read_json(path), layout, str(path))
