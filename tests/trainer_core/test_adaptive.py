"""Adaptive loss weights: each method on a two-term toy with a known imbalance, state round trips, exact resume."""

from __future__ import annotations

import json
import math

import pytest
import torch

from trainer_core.config import AdaptiveLossConfig
from trainer_core.train.adaptive import AdaptiveLoss
from trainer_core.train.loop import fit

TERMS = ["fk_pos", "rot_local"]


def _adaptive(method: str, **kw) -> AdaptiveLoss:
    return AdaptiveLoss(AdaptiveLossConfig(adaptive_loss_method=method, adaptive_loss_terms=TERMS, **kw))


def _toy_steps(ad: AdaptiveLoss, steps: int, scale_a: float, scale_b: float) -> list[torch.Tensor]:
    """A shared linear layer fitting two targets; term a's loss (and gradient) is ``scale_a / scale_b`` times b's."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 4)
    opt = torch.optim.SGD(layer.parameters(), lr=1e-3)
    x = torch.randn(64, 4)
    ya, yb = torch.randn(64, 4), torch.randn(64, 4)
    active = torch.tensor([True, True])
    history = []
    for _ in range(steps):
        z = layer(x)
        base = {"fk_pos": scale_a * (z - ya).square().mean(), "rot_local": scale_b * (z - yb).square().mean()}
        ad.observe(base, layer.weight, active)
        a = ad.multipliers()
        total = a["fk_pos"] * base["fk_pos"] + a["rot_local"] * base["rot_local"] + ad.regularizer(active)
        opt.zero_grad()
        total.backward()
        opt.step()
        ad.step()
        history.append(ad.weights())
    ad.last_base = {k: float(v.detach()) for k, v in base.items()}  # the toy's final losses, for the checks
    return history


def _positive_finite(history: list[torch.Tensor]) -> None:
    w = torch.stack(history)
    assert torch.isfinite(w).all() and (w > 0).all()


def test_gradnorm_takes_weight_from_the_term_with_the_larger_gradient():
    ad = _adaptive("gradnorm", adaptive_loss_alpha=1.5)
    history = _toy_steps(ad, 200, scale_a=20.0, scale_b=1.0)
    _positive_finite(history)
    wa, wb = history[-1].tolist()
    assert wa < 0.5 < 1.5 < wb  # a's gradient is 20x b's: a loses weight, b gains it
    assert wa + wb == pytest.approx(2.0, rel=1e-5)  # renormalised to the number of terms
    assert all(float(h.sum()) == pytest.approx(2.0, rel=1e-5) for h in history)


def test_gradnorm_with_equal_terms_keeps_equal_weights():
    history = _toy_steps(_adaptive("gradnorm"), 50, scale_a=1.0, scale_b=1.0)
    wa, wb = history[-1].tolist()
    assert abs(wa - wb) < 0.2  # the toy's two targets differ, so they drift a little, not apart


def test_uncertainty_weights_go_to_the_inverse_loss():
    ad = _adaptive("uncertainty")
    history = _toy_steps(ad, 600, scale_a=10.0, scale_b=0.1)
    _positive_finite(history)
    wa, wb = history[-1].tolist()
    # optimum of exp(-s) l + s is exp(-s) = 1 / l: the noisier (larger) term gets the smaller weight
    la, lb = ad.last_base["fk_pos"], ad.last_base["rot_local"]
    assert la > 50 * lb and wa < wb
    assert wa * la == pytest.approx(1.0, rel=0.1) and wb * lb == pytest.approx(1.0, rel=0.1)


def test_dwa_gives_the_slower_falling_term_more_weight():
    ad = _adaptive("dwa", adaptive_loss_temperature=2.0)
    assert ad.weights().tolist() == [1.0, 1.0]
    ad.end_epoch([1.0, 1.0])
    assert ad.weights().tolist() == [1.0, 1.0]  # one epoch: no ratio yet
    ad.end_epoch([0.5, 1.0])  # a halved, b flat
    wa, wb = ad.weights().tolist()
    ea, eb = math.exp(0.5 / 2.0), math.exp(1.0 / 2.0)
    assert wa == pytest.approx(2 * ea / (ea + eb), rel=1e-6) and wb == pytest.approx(2 * eb / (ea + eb), rel=1e-6)
    assert wb > wa and wa + wb == pytest.approx(2.0)
    sharp = _adaptive("dwa", adaptive_loss_temperature=0.1)
    sharp.end_epoch([1.0, 1.0])
    sharp.end_epoch([0.5, 1.0])
    assert sharp.weights()[1] - sharp.weights()[0] > wb - wa  # a lower temperature follows the ratios harder


@pytest.mark.parametrize("method", ["gradnorm", "uncertainty", "dwa"])
def test_state_round_trip_continues_identically(method):
    ad = _adaptive(method)
    _toy_steps(ad, 20, 5.0, 1.0)
    ad.end_epoch([1.0, 2.0])
    ad.end_epoch([0.8, 1.9])
    copy = _adaptive(method)
    copy.load_state_dict(ad.state_dict())
    assert torch.equal(copy.weights(), ad.weights())
    a, b = _toy_steps(ad, 5, 5.0, 1.0), _toy_steps(copy, 5, 5.0, 1.0)
    assert all(torch.allclose(x, y, rtol=0, atol=0) for x, y in zip(a, b))


def _metrics(out, ep):
    return json.loads((out / "metrics" / f"teacher_ep{ep:03d}.json").read_text())


@pytest.mark.parametrize("method", ["gradnorm", "uncertainty", "dwa"])
def test_training_logs_weights_and_resume_reproduces_them(tmp_path, tiny_config, method):
    cfg = tiny_config(epochs=4, keep_checkpoints=0, adaptive_loss_method=method, grad_accum_steps=2,
                      adaptive_loss_terms="fk_pos,rot_local,rot_delta,freerun")  # fmt: skip
    full, part = tmp_path / "full", tmp_path / "part"
    fit(cfg, full, log=lambda _: None)
    fit(cfg, part, resume=full / "checkpoint_epoch_2.pt", log=lambda _: None)
    keys = [f"adaptive_loss/{t}/{k}" for t in ("fk_pos", "rot_local", "rot_delta", "freerun")
            for k in ("weight", "base_loss")]  # fmt: skip
    weights = []
    for ep in (1, 2, 3, 4):
        m = _metrics(full, ep)
        assert set(keys) <= set(m)
        weights.append([m[k] for k in keys if k.endswith("weight")])
        assert sum(m[f"loss_group/{g}"] for g in ("core", "aux", "long")) == pytest.approx(1.0, abs=1e-6)
    w = torch.tensor(weights)
    assert torch.isfinite(w).all() and (w > 0).all()
    if method == "dwa":
        assert weights[0] == weights[1] == [1.0] * 4 and weights[3] != weights[2]  # moves from epoch 3 on
    else:
        assert weights[3] != [1.0] * 4  # learned weights moved
    for ep in (3, 4):
        a, b = _metrics(full, ep), _metrics(part, ep)
        for k in (*keys, "loss/total", "GeoDeg"):
            assert a[k] == pytest.approx(b[k], rel=1e-6), (ep, k)
    assert (full / "metrics" / "teacher" / "adaptive_loss_fk_pos_weight.txt").read_text().count("\n") == 4
