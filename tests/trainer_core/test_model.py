"""The model and its rollouts: an untrained model copies the last frame (its root motion: the frame's or the
control's, ``root_from``); shapes; free run feeds back."""

from __future__ import annotations

import pytest
import torch

from trainer_core.train.metrics import baseline, evaluate
from trainer_core.train.setup import setup


@pytest.fixture(scope="module")
def tiny_setup():
    from tests.conftest import tiny_overrides
    from trainer_core.config_load import config_from_dict, load_config

    raw = {**load_config().to_dict(), **tiny_overrides(root_from="frame")}
    return setup(config_from_dict(raw, "tiny"))


def test_untrained_model_is_the_copy_last_frame_baseline(tiny_setup):  # root_from "frame"
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


@pytest.fixture(scope="module")
def control_setup():
    from tests.conftest import tiny_overrides
    from trainer_core.config_load import config_from_dict, load_config

    raw = {**load_config().to_dict(), **tiny_overrides(root_from="control")}
    return setup(config_from_dict(raw, "tiny-control"))


def _next_root(s, model=None, n: int = 50) -> torch.Tensor:
    """The next root velocity and yaw rate (m/s, m/s, rad/s) from ``n`` training frames of setup ``s``, by
    ``model`` (None: the setup's untrained one)."""
    mean, std = s.rt.norm.traj_stats()
    with torch.no_grad():
        return (model or s.model)(s.train.x[:n], s.train.c[:n]).traj * std + mean


def test_root_from_frame_keeps_the_current_root_motion_and_control_takes_the_commanded_one(tiny_setup,
                                                                                          control_setup):  # fmt: skip
    frame, control = tiny_setup.train, control_setup.train
    assert (tiny_setup.model.arch.root_from, control_setup.model.arch.root_from) == ("frame", "control")
    assert torch.allclose(_next_root(tiny_setup), frame.traj_raw[:50], atol=1e-5)
    got = _next_root(control_setup)
    assert torch.allclose(got, control.ctrl_raw[:50], atol=1e-5)
    assert not torch.allclose(got, control.traj_raw[:50], atol=1e-3)  # the two differ on these frames
    # The poses are the last frame's either way: only the root motion starts elsewhere.
    got, ref = evaluate(control_setup.model, control_setup.rt, control_setup.kin, control_setup.val, 8), baseline(
        control_setup.val, control_setup.kin, 8)  # fmt: skip
    assert got["FreeRun/GeoDeg"] == pytest.approx(ref["FreeRun/GeoDeg"], rel=1e-3)
    assert got["FreeRun/RootVelMAE"] != pytest.approx(ref["FreeRun/RootVelMAE"], rel=1e-3)


def test_a_checkpoint_from_before_root_from_loads_as_frame(control_setup):
    from trainer_core.train.build import model_from_state

    s = control_setup
    weights = s.model.state_dict()
    assert not [k for k in weights if k.startswith("ctrl_")]  # derived from the normalizer, never saved
    old_arch = {k: v for k, v in s.model.arch.to_dict().items() if k != "root_from"}
    state = {"arch": old_arch, "normalizer": s.norm.to_dict(), "model_state_dict": weights}
    model, _ = model_from_state(state, "old.pt", torch.device("cpu"))
    assert model.arch.root_from == "frame"
    new, _ = model_from_state({**state, "arch": s.model.arch.to_dict()}, "new.pt", torch.device("cpu"))
    assert new.arch.root_from == "control"
    assert torch.allclose(_next_root(s), _next_root(s, new), atol=1e-5)
