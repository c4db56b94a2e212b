"""The model and its rollouts: an untrained model copies the last frame; shapes; free run feeds back."""

from __future__ import annotations

import pytest
import torch

from trainer_core.train.metrics import baseline, evaluate
from trainer_core.train.setup import setup


@pytest.fixture(scope="module")
def tiny_setup():
    from tests.conftest import tiny_overrides
    from trainer_core.config_load import config_from_dict, load_config

    raw = {**load_config().to_dict(), **tiny_overrides()}
    return setup(config_from_dict(raw, "tiny"))


def test_untrained_model_is_the_copy_last_frame_baseline(tiny_setup):
    s = tiny_setup
    got = evaluate(s.model, s.rt, s.kin, s.val, 8)
    ref = baseline(s.val, s.kin, 8)
    for key in ("GeoDeg", "FreeRun/GeoDeg", "RootVelMAE", "FreeRun/RootVelMAE", "YawAbsDeg"):
        assert got[key] == pytest.approx(ref[key], rel=1e-3, abs=1e-4), key
    # Contacts pass through a clamped logit (CONTACT_EPS), so they match to that precision.
    assert got["FootContact"] == pytest.approx(ref["FootContact"], abs=1e-3)


def test_output_shapes(tiny_setup):
    s = tiny_setup
    x, c = s.train.x[:10], s.train.c[:10]
    out = s.model(x, c)
    J = s.dataset.skeleton.n_joints
    assert out.delta6d.shape == (10, J, 6) and out.traj.shape == (10, 3) and out.contact_logits.shape == (10, 2)
    assert out.phase_attn.shape == (10, s.cfg.model.phase_bins)
    assert torch.allclose(out.phase_attn.sum(-1), torch.ones(10))
