"""Soft foot contacts and the soft gait phase/period extracted from them.

Nothing here uses an explicit period label: the gait period and phase come from
how the left and right soft contacts alternate, as the seed prescribes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A period outside these bounds is not a gait cycle (seconds).
MIN_PERIOD_S = 0.25
MAX_PERIOD_S = 2.5
DEFAULT_PERIOD_S = 1.0
RATE_WINDOW_S = 1.2  # the period is measured over this window, about one stride


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
        if problems:
            raise ValueError("; ".join(problems))


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


def _analytic(x: np.ndarray) -> np.ndarray:
    """Analytic signal (Hilbert transform) of a real 1-D signal via the FFT."""
    n = x.shape[0]
    X = np.fft.fft(x)
    h = np.zeros(n)
    h[0] = 1.0
    if n % 2 == 0:
        h[n // 2] = 1.0
        h[1 : n // 2] = 2.0
    else:
        h[1 : (n + 1) // 2] = 2.0
    return np.fft.ifft(X * h)


def soft_gait(contacts: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Soft gait phase ``(T,)`` radians and period ``(T,)`` seconds from soft contacts ``(T, 2)``.

    The left-minus-right contact signal alternates once per gait cycle; its
    analytic signal gives an instantaneous phase, whose rate gives the period.
    Where the feet do not alternate (standing), the period falls back to the
    clip's median, or to ``DEFAULT_PERIOD_S``.
    """
    T = contacts.shape[0]
    d = contacts[:, 0].astype(np.float64) - contacts[:, 1]
    d = d - d.mean()
    padded = np.pad(d, (T, T), mode="reflect") if T > 1 else d
    z = _analytic(padded)[T : 2 * T] if T > 1 else _analytic(d)
    phase = np.angle(z)
    amplitude = np.abs(z)
    # Phase slope over a centred window of about one stride: within a stride the
    # phase of a square-ish contact wave advances unevenly, over a stride it does not.
    unwrapped = np.unwrap(phase)
    half = max(1, int(round(RATE_WINDOW_S * fps / 2)))
    lo = np.clip(np.arange(T) - half, 0, T - 1)
    hi = np.clip(np.arange(T) + half, 0, T - 1)
    rate = (unwrapped[hi] - unwrapped[lo]) / np.maximum(hi - lo, 1)  # rad / frame
    with np.errstate(divide="ignore"):
        period = np.where(rate > 0, 2 * np.pi / np.maximum(rate, 1e-9) / fps, np.inf)
    valid = (amplitude > 0.2) & (period >= MIN_PERIOD_S) & (period <= MAX_PERIOD_S)
    fallback = float(np.median(period[valid])) if valid.any() else DEFAULT_PERIOD_S
    period = np.where(valid, period, fallback)
    return phase.astype(np.float32), period.astype(np.float32)
