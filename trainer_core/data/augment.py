"""The guide's ``augmentation`` block, applied per training batch on the device.

- ``mirror``: half the windows swap left and right (see ``mirror.py``): local
  rotations and angular velocity through each joint's frame map, the lateral
  root velocity and the yaw rate negated, the soft contacts ``[L, R]`` swapped,
  so the gait phase (0 at a left foot strike, pi at a right one) turns by pi; the
  control's lateral velocity and yaw rate negated, its gait period kept.
- ``speed_scale_range``: each window is resampled in time by ``s`` drawn
  uniformly from ``[lo, hi]``: output frame ``i`` is source position
  ``start + i s``. Rotations are interpolated on SO(3) between the two
  neighbouring frames (``R_a exp(u log(R_a^T R_b))``), everything else linearly;
  root velocity, yaw rate and angular velocity are multiplied by ``s``, the gait
  period divided by it. The control is not interpolated (it would average
  ``cond_window_s / s`` seconds, and at ``s = 2`` the target's own velocity): it
  is recomputed by ``control_windows``, the function that made the split's, from
  the resampled root trajectory, which runs ``W`` frames (the control window)
  past the window's last target. Frames past the clip's end are masked out of
  the loss, as in padded windows, and the controls' windows shrink there.
- ``noise_std``: Gaussian noise on the normalized input features of the trained
  pass (after scheduled sampling), never on targets or the control.

A mirrored or resampled batch is its own ``Split`` of ``B (T+1)`` frames, each
window a clip of its own, with normalized features rebuilt by the run's
``Normalizer`` and FK recomputed, so the loss code runs on it unchanged. Every
random draw comes from the epoch's generator (``--resume`` stays exact); draws,
gathers and interpolation stay on the device, with no host sync beyond the small
index copies FK makes (as the loss's own FK does). With augmentation off nothing
here runs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from trainer_core.config import AugmentConfig
from trainer_core.data.device_data import Split, control_frames, control_windows
from trainer_core.data.features import COND_LAYOUT, Normalizer
from trainer_core.data.mirror import Mirror, side_and_stem
from trainer_core.data.skeleton import Skeleton
from trainer_core.errors import ConfigError
from trainer_core.geometry import depth_levels, forward_kinematics, matrix_to_rot6d, so3_exp, so3_log


@dataclass
class Augmenter:
    """Builds augmented training batches; ``create`` returns None when the config asks for nothing."""

    norm: Normalizer  # on the training device
    offsets: torch.Tensor  # (J, 3) metres
    parents: tuple[int, ...]
    levels: list[list[int]]
    mirror: Mirror | None  # None: no mirroring
    speed_range: tuple[float, float] | None  # None: no resampling
    noise_std: float
    ctrl_window: int  # frames the control averages (``cond_window_s`` at the clips' rate)

    @classmethod
    def create(
        cls, aug: AugmentConfig, skeleton: Skeleton, train: Split, norm: Normalizer, cond_window_s: float
    ) -> Augmenter | None:
        """``train`` built with ``cond_window_s``. ConfigError (before anything is written) if mirroring cannot
        work on this skeleton."""
        device = train.x.device
        mirror = None
        if aug.mirror or aug.mirror_pairs is not None:
            try:
                mirror = Mirror.create(skeleton, train.Rg, aug.mirror_pairs, device)
            except ConfigError:
                if aug.mirror != "auto" or aug.mirror_pairs is not None:  # pairs the user named must work
                    raise
                warnings.warn(f'`augmentation.mirror` is "auto" and this skeleton cannot be mirrored '
                              f"({_why_not_mirrorable(skeleton.bones)}): "
                              "training without mirroring; name the pairs in `augmentation.mirror_pairs` to mirror",
                              stacklevel=2)  # fmt: skip
        lo, hi = aug.speed_scale_range
        if not aug.active or (mirror is None and not aug.noise_std and (lo, hi) == (1.0, 1.0)):
            return None  # nothing asked, or only a mirror "auto" that this skeleton cannot do
        return cls(
            norm=norm.to(device),
            offsets=torch.from_numpy(skeleton.offsets).to(device),
            parents=skeleton.parents,
            levels=depth_levels(skeleton.parents),
            mirror=mirror if aug.mirror else None,
            speed_range=None if (lo, hi) == (1.0, 1.0) else (lo, hi),
            noise_std=float(aug.noise_std),
            ctrl_window=control_frames(cond_window_s, train.fps),
        )

    @property
    def rebuilds(self) -> bool:
        """Whether batches are rebuilt (mirror or speed scale), not only noised."""
        return self.mirror is not None or self.speed_range is not None

    def draw(
        self, B: int, device: torch.device, generator: torch.Generator
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Per-window speed factors ``(B,)`` and mirror flags ``(B,)`` bool, None where not augmented."""
        scale = flip = None
        if self.speed_range is not None:
            lo, hi = self.speed_range
            scale = lo + (hi - lo) * torch.rand(B, device=device, generator=generator)
        if self.mirror is not None:
            flip = torch.rand(B, device=device, generator=generator) < 0.5
        return scale, flip

    def batch(self, split: Split, starts: torch.Tensor, T: int, generator: torch.Generator) -> Split:
        """The windows of ``T + 1`` frames from ``starts (B,)``, augmented, as a ``Split`` of ``B (T+1)`` frames."""
        scale, flip = self.draw(starts.shape[0], starts.device, generator)
        return self.windows(split, starts, T, scale, flip)

    def noise(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``x`` plus Gaussian noise of std ``noise_std`` (normalized units); ``x`` itself when 0."""
        if self.noise_std <= 0:
            return x
        return x + self.noise_std * torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)

    def windows(
        self, split: Split, starts: torch.Tensor, T: int, scale: torch.Tensor | None, flip: torch.Tensor | None
    ) -> Split:
        """Windows from ``starts (B,)``, resampled by ``scale (B,)`` and mirrored where ``flip (B,)``."""
        raw, valid = resample(split, self.norm, starts, T, scale, self.ctrl_window)
        if flip is not None and self.mirror is not None:
            raw = mirror_raw(raw, self.mirror, flip)
        return self._as_split(split, raw, valid)

    def _as_split(self, split: Split, raw: dict[str, torch.Tensor], valid: torch.Tensor) -> Split:
        B, T1 = valid.shape
        norm, layout = self.norm, self.norm.layout
        R = raw["R"]
        Rg, pos = forward_kinematics(R, self.offsets, self.parents, levels=self.levels)
        x = layout.pack(
            {
                "rot6d": matrix_to_rot6d(R),
                "angvel": raw["angvel"],
                "root_vel": raw["traj"][..., :2],
                "yaw_rate": raw["traj"][..., 2:],
                "contacts": raw["contacts"],
                "phase": raw["phase"],
            }
        )
        c = COND_LAYOUT.pack(
            {
                "ctrl_vel": raw["ctrl"][..., :2],
                "ctrl_yaw_rate": raw["ctrl"][..., 2:],
                "log_period": raw["log_period"][..., None],
            }
        )
        mean, std = norm.traj_stats()
        begin = torch.arange(B, device=valid.device) * T1

        def flat(v: torch.Tensor) -> torch.Tensor:  # (B, T+1, ...) -> (B (T+1), ...)
            return v.reshape(B * T1, *v.shape[2:])

        def per_frame(v: torch.Tensor) -> torch.Tensor:  # (B,) -> (B (T+1),)
            return v[:, None].expand(B, T1).reshape(-1)

        return Split(
            x=flat(norm.norm_x(x)),
            c=flat(norm.norm_c(c)),
            R=flat(R),
            Rg=flat(Rg),
            pos=flat(pos),
            traj=flat((raw["traj"] - mean) / std),
            traj_raw=flat(raw["traj"]),
            contacts=flat(raw["contacts"]),
            phase=flat(raw["phase"]),
            log_period=flat(raw["log_period"]),
            clip_end=per_frame(begin + valid.sum(1)),
            clip_begin=per_frame(begin),
            ctrl_raw=flat(raw["ctrl"]),
            ctrl_full=flat(raw["ctrl_full"]),
            window_starts=begin,
            fps=split.fps,
            names=split.names,
        )


def resample(
    split: Split, norm: Normalizer, starts: torch.Tensor, T: int, scale: torch.Tensor | None, ctrl_window: int
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Raw parts ``(B, T+1, ...)`` of the windows from ``starts (B,)``, resampled by ``scale (B,)`` (None: 1).

    Returns ``{R, angvel, traj, contacts, phase, log_period, ctrl, ctrl_full}`` and
    ``valid (B, T+1)``: the frame lies inside the start's clip. Past the clip's
    end the last frame repeats. Angular velocity is read back from the
    normalized features (the split keeps no raw copy). Resampled windows get the
    control of the resampled clip, ``control_windows`` over ``ctrl_window``
    frames (the split's own window), from a root trajectory resampled that many
    frames further.
    """
    end = split.clip_end[starts]  # (B,)
    if scale is None:
        idx = starts[:, None] + torch.arange(T + 1, device=starts.device)
        valid = idx < end[:, None]
        a = torch.minimum(idx, end[:, None] - 1)
        parts = _sources(split, norm, a)
        parts["R"] = split.R[a]
        parts["traj"] = split.traj_raw[a]
        parts["ctrl"] = split.ctrl_raw[a]
        parts["ctrl_full"] = split.ctrl_full[a]
        return parts, valid
    steps = torch.arange(T + 2 + ctrl_window, device=starts.device)  # the window, then its last control's frames
    offset = scale[:, None] * steps  # source position - start
    room = (end - 1 - starts).to(offset.dtype)[:, None]
    inside = offset <= room + 1e-4
    offset = torch.minimum(offset, room)
    whole = offset.floor()
    u = offset - whole  # (B, N) in [0, 1)
    a = starts[:, None] + whole.long()
    b = torch.minimum(a + 1, end[:, None] - 1)
    s = scale[:, None, None]
    traj = _lerp(split.traj_raw, a, b, u) * s  # (B, N, 3): only the root trajectory runs past the window
    ctrl, ctrl_full = control_windows(traj, ctrl_window, inside.sum(1))
    a, b, u, n = a[:, : T + 1], b[:, : T + 1], u[:, : T + 1], T + 1
    at_a, at_b = _sources(split, norm, a), _sources(split, norm, b)
    parts = {k: _mix(at_a[k], at_b[k], u) for k in at_a}
    Ra, Rb = split.R[a], split.R[b]
    step = so3_log(Ra.transpose(-1, -2) @ Rb, near_pi=False)  # (B, T+1, J, 3)
    parts["R"] = Ra @ so3_exp(u[..., None, None] * step)
    parts["phase"] = parts["phase"] / parts["phase"].norm(dim=-1, keepdim=True).clamp_min(1e-6)
    parts["angvel"] = parts["angvel"] * s[..., None]
    parts["traj"] = traj[:, :n]
    parts["ctrl"] = ctrl[:, :n]
    parts["ctrl_full"] = ctrl_full[:, :n]
    parts["log_period"] = parts["log_period"] - scale.log()[:, None]
    return parts, inside[:, :n]


def _lerp(v: torch.Tensor, a: torch.Tensor, b: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``v[a] + u (v[b] - v[a])`` for frame indices ``a, b (B, N)`` and weights ``u (B, N)``: ``(B, N, ...)``."""
    return _mix(v[a], v[b], u)


def _mix(va: torch.Tensor, vb: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``va + u (vb - va)`` for gathered frames ``va, vb (B, N, ...)`` and weights ``u (B, N)``."""
    return va + u.view(*u.shape, *([1] * (va.dim() - 2))) * (vb - va)


def _sources(split: Split, norm: Normalizer, idx: torch.Tensor) -> dict[str, torch.Tensor]:
    """Raw parts ``(*idx.shape, ...)`` of the frames ``idx`` that are interpolated linearly. The frames are
    gathered before the angular velocity is read back from the normalized features, so a batch costs its own
    frames, not the split's (which grows with the dataset)."""
    s = norm.layout.slices()["angvel"]
    angvel = split.x[:, s][idx] * norm.x_std[s] + norm.x_mean[s]
    return {
        "angvel": angvel.view(*idx.shape, -1, 3),
        "contacts": split.contacts[idx],
        "phase": split.phase[idx],
        "log_period": split.log_period[idx],
    }


def _why_not_mirrorable(bones: tuple[str, ...]) -> str:
    """Why the joint names give no mirror, for the ``"auto"`` warning (``pairs_by_name`` raises on the first)."""
    sides: dict[str, list[str]] = {}
    for b in bones:
        side, stem = side_and_stem(b)
        if side is not None:
            sides.setdefault(stem, []).append(side)
    for b in bones:
        side, stem = side_and_stem(b)
        if side is not None and sorted(sides[stem]) != ["L", "R"]:
            return f"joint `{b}` has no unique {'right' if side == 'L' else 'left'}-side partner by name"
    if sides:
        return "the left/right pairs its joint names show do not mirror its joint tree"
    return "its joint names show no left/right pairs"


_LATERAL = torch.tensor([-1.0, 1.0, -1.0])  # [left velocity, forward velocity, yaw rate] under the mirror


def mirror_raw(raw: dict[str, torch.Tensor], mirror: Mirror, flip: torch.Tensor) -> dict[str, torch.Tensor]:
    """Raw window parts ``(B, T+1, ...)`` mirrored where ``flip (B,)``; the others unchanged, bit for bit."""
    f = flip[:, None]  # (B, 1)
    sign = _LATERAL.to(flip.device)
    out = dict(raw)
    out["R"] = torch.where(f[..., None, None, None], mirror.rotations(raw["R"]), raw["R"])
    out["angvel"] = torch.where(f[..., None, None], mirror.angular_velocity(raw["angvel"]), raw["angvel"])
    out["traj"] = torch.where(f[..., None], raw["traj"] * sign, raw["traj"])
    out["ctrl"] = torch.where(f[..., None], raw["ctrl"] * sign, raw["ctrl"])
    out["contacts"] = torch.where(f[..., None], raw["contacts"].flip(-1), raw["contacts"])
    out["phase"] = torch.where(f[..., None], -raw["phase"], raw["phase"])
    return out
