"""Soft foot contacts and the soft gait phase/period extracted from them.

Nothing here uses an explicit period label: the gait period and phase come from
how the left and right soft contacts alternate, as the seed prescribes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainer_core.errors import raise_all

# A period outside these bounds is not a gait cycle (seconds).
MIN_PERIOD_S = 0.25
MAX_PERIOD_S = 2.5
DEFAULT_PERIOD_S = 1.0


@dataclass(frozen=True)
class ContactParams:
    """Soft contact = sigmoid on height above the foot's planted height x sigmoid on speed."""

    height_m: float = 0.04  # height above the planted level where the score crosses 0.5
    height_soft_m: float = 0.012  # width of that transition
    speed_mps: float = 0.7  # foot speed where the score crosses 0.5
    speed_soft_mps: float = 0.2
    floor_percentile: float = 5.0  # each joint's planted level: this percentile of its height

    def __post_init__(self) -> None:
        problems = [
            f"`{k}` is {getattr(self, k)}, but must be > 0"
            for k in ("height_m", "height_soft_m", "speed_mps", "speed_soft_mps")
            if not getattr(self, k) > 0
        ]
        if not 0 <= self.floor_percentile < 50:
            problems.append(f"`floor_percentile` is {self.floor_percentile}, but must be in [0, 50)")
        raise_all(problems, ValueError)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def soft_contact(foot_pos: np.ndarray, fps: float, params: ContactParams | None = None) -> np.ndarray:
    """Soft contact ``(T,)`` in [0, 1] for one foot from its joints' world positions ``(T, K, 3)``, Y up.

    Each joint (ankle, toe) scores on its own height above its planted level and
    its speed; the foot scores the best of its joints (the toe carries push-off).
    """
    params = params or ContactParams()
    height = foot_pos[..., 1]
    planted = np.percentile(height, params.floor_percentile, axis=0, keepdims=True)
    speed = np.linalg.norm(np.diff(foot_pos, axis=0), axis=-1) * fps
    speed = np.concatenate([speed[:1], speed], axis=0)
    s_h = _sigmoid((params.height_m - (height - planted)) / params.height_soft_m)
    s_v = _sigmoid((params.speed_mps - speed) / params.speed_soft_mps)
    return (s_h * s_v).max(axis=1).astype(np.float32)


STRIKE_HYSTERESIS = 0.3  # |left - right contact| that counts as one foot clearly down


def foot_strikes(contacts: np.ndarray) -> list[tuple[float, int]]:
    """Foot strikes ``(time in frames, 0 left / 1 right)`` from soft contacts ``(T, 2)``, in order.

    A left strike is ``left - right`` rising through ``+STRIKE_HYSTERESIS`` after
    the right foot was last clearly down (and the mirror for the right foot); the
    time is interpolated between the two frames around the crossing. Causal: a
    strike at frame ``t`` is known from frames ``<= t``.
    """
    d = contacts[:, 0].astype(np.float64) - contacts[:, 1]
    h = STRIKE_HYSTERESIS
    strikes: list[tuple[float, int]] = []
    down = 0 if d[0] > h else 1 if d[0] < -h else -1  # which foot was last clearly down
    for t in range(1, d.shape[0]):
        for foot, sign in ((0, 1.0), (1, -1.0)):
            if down != foot and sign * d[t] > h >= sign * d[t - 1]:
                frac = (h - sign * d[t - 1]) / max(sign * (d[t] - d[t - 1]), 1e-9)
                if down != -1:
                    strikes.append((t - 1 + frac, foot))
                down = foot
    return strikes


def soft_gait(contacts: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Soft gait phase ``(T,)`` radians and period ``(T,)`` seconds from soft contacts ``(T, 2)``. Causal.

    Left and right strikes (``foot_strikes``) are half a cycle apart: the period at
    frame ``t`` is twice the time between the last two strikes of different feet
    seen by ``t`` (the last full cycle when the same foot struck twice), and the
    phase is 0 at a left strike, pi at a right strike, advancing at that period in
    between. Nothing at frame ``t`` depends on a later frame, so the phase and
    period are inputs the model could compute online. Before a first stride is
    seen, or where the feet stop alternating (standing), the period is the last
    valid one, else ``DEFAULT_PERIOD_S``.
    """
    T = contacts.shape[0]
    strikes = foot_strikes(contacts)
    phase = np.zeros(T)
    period = np.full(T, DEFAULT_PERIOD_S * fps)  # frames, converted at the end
    k, last, prev, p_frames = 0, None, None, DEFAULT_PERIOD_S * fps
    for t in range(T):
        while k < len(strikes) and strikes[k][0] <= t:
            prev, last = last, strikes[k]
            k += 1
            if prev is not None:
                cycle = (last[0] - prev[0]) * (2.0 if last[1] != prev[1] else 1.0)
                if MIN_PERIOD_S * fps <= cycle <= MAX_PERIOD_S * fps:
                    p_frames = cycle
        if last is not None and t - last[0] > MAX_PERIOD_S * fps:
            last = None  # the feet stopped alternating
        period[t] = p_frames
        start_phase, start_t = (0.0, 0.0) if last is None else (np.pi * last[1], last[0])
        phase[t] = start_phase + 2 * np.pi * (t - start_t) / p_frames
    phase = (phase + np.pi) % (2 * np.pi) - np.pi
    return phase.astype(np.float32), (period / fps).astype(np.float32)
