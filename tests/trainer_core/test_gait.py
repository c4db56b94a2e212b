"""Soft contacts from foot motion, and the soft gait phase/period from the contacts."""

from __future__ import annotations

import numpy as np
import pytest

from trainer_core.data.gait import DEFAULT_PERIOD_S, soft_contact, soft_gait


def alternating_contacts(period_s: float, fps: float = 30.0, seconds: float = 6.0) -> np.ndarray:
    t = np.arange(int(seconds * fps)) / fps
    left = 0.5 + 0.5 * np.tanh(4 * np.sin(2 * np.pi * t / period_s))
    return np.stack([left, 1 - left], axis=1)


@pytest.mark.parametrize("period", [0.6, 1.0, 1.4])
def test_soft_period_recovers_the_cycle_once_a_stride_is_seen(period):
    fps = 30.0
    phase, est = soft_gait(alternating_contacts(period), fps)
    seen = int(round(1.1 * period * fps))  # causal: the first left and right strikes are behind us
    assert np.allclose(est[seen:], period, rtol=0.02)
    assert np.allclose(est[:seen // 3], DEFAULT_PERIOD_S)  # nothing known yet
    # After that the phase advances by one turn per cycle.
    turns = (np.unwrap(phase)[-1] - np.unwrap(phase)[seen]) / (2 * np.pi)
    assert turns == pytest.approx((len(est) - 1 - seen) / fps / period, rel=0.03)


def test_standing_still_falls_back_to_the_default_period():
    _, est = soft_gait(np.ones((60, 2)), 30.0)
    assert np.allclose(est, DEFAULT_PERIOD_S)


def test_soft_contact_is_high_when_planted_and_low_when_swinging():
    fps, T = 30.0, 60
    pos = np.zeros((T, 2, 3))
    pos[30:, :, 1] = 0.25  # lifted 25 cm
    pos[30:, :, 2] = np.linspace(0, 1.5, 30)[:, None]  # and moving 1.5 m/s
    c = soft_contact(pos, fps)
    assert c[:25].min() > 0.9 and c[35:].max() < 0.05 and ((c >= 0) & (c <= 1)).all()
