"""Adaptive loss weights: each method on a two-term toy with a known imbalance, state round trips, exact resume."""

from __future__ import annotations

import json
import math

import pytest
import torch

from trainer_core.config import AdaptiveLossConfig, LossWeights
from trainer_core.config_load import load_config
from trainer_core.train.adaptive import AdaptiveLoss
from trainer_core.train.loop import accumulate, fit, train_step
from trainer_core.train.schedules import plan_epoch
from trainer_core.train.setup import setup

TERMS = ["fk_pos", "rot_local"]
UNIT = LossWeights(w_fk_pos=1.0, w_rot_local=1.0)  # the toys' terms weigh 1: their raw and base losses agree


def _adaptive(method: str, **kw) -> AdaptiveLoss:
    return AdaptiveLoss(AdaptiveLossConfig(adaptive_loss_method=method, adaptive_loss_terms=TERMS, **kw))


def _toy_steps(ad: AdaptiveLoss, steps: int, scale_a: float, scale_b: float) -> list[torch.Tensor]:
    """A shared linear layer fitting two targets; term a's loss (and gradient) is ``scale_a / scale_b`` times b's."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 4)
    opt = torch.optim.SGD(layer.parameters(), lr=1e-3)
    x = torch.randn(64, 4)
    ya, yb = torch.randn(64, 4), torch.randn(64, 4)
    active = ad.active(UNIT)
    history = []
    for _ in range(steps):
        z = layer(x)
        base = {"fk_pos": scale_a * (z - ya).square().mean(), "rot_local": scale_b * (z - yb).square().mean()}
        ad.observe(base, UNIT, layer.weight)
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
    ad.end_epoch([1.0, 1.0], UNIT)
    assert ad.weights().tolist() == [1.0, 1.0]  # one epoch: no ratio yet
    ad.end_epoch([0.5, 1.0], UNIT)  # a halved, b flat
    wa, wb = ad.weights().tolist()
    ea, eb = math.exp(0.5 / 2.0), math.exp(1.0 / 2.0)
    assert wa == pytest.approx(2 * ea / (ea + eb), rel=1e-6) and wb == pytest.approx(2 * eb / (ea + eb), rel=1e-6)
    assert wb > wa and wa + wb == pytest.approx(2.0)
    sharp = _adaptive("dwa", adaptive_loss_temperature=0.1)
    sharp.end_epoch([1.0, 1.0], UNIT)
    sharp.end_epoch([0.5, 1.0], UNIT)
    assert sharp.weights()[1] - sharp.weights()[0] > wb - wa  # a lower temperature follows the ratios harder


@pytest.mark.parametrize("method", ["gradnorm", "uncertainty", "dwa"])
def test_state_round_trip_continues_identically(method):
    ad = _adaptive(method)
    _toy_steps(ad, 20, 5.0, 1.0)
    ad.end_epoch([1.0, 2.0], UNIT)
    ad.end_epoch([0.8, 1.9], UNIT)
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
            for k in ("weight", "base_loss", "raw_loss")]  # fmt: skip
    weights = []
    for ep in (1, 2, 3, 4):
        m = _metrics(full, ep)
        assert set(keys) <= set(m)
        for t, w in (("fk_pos", 0.07), ("rot_local", 0.07), ("rot_delta", 1.0), ("freerun", 0.1)):
            assert m[f"adaptive_loss/{t}/raw_loss"] == pytest.approx(m[f"loss/{t}"], rel=1e-6)  # L, unweighted
            assert m[f"adaptive_loss/{t}/base_loss"] == pytest.approx(w * m[f"loss/{t}"], rel=1e-6)  # w L
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


def _linear_terms(shared: torch.Tensor, grads: dict[str, torch.Tensor], values: dict[str, float]):
    """Loss terms on ``shared`` whose gradients are exactly ``grads[t]`` and whose values are ``values[t]``."""
    out = {}
    for t, g in grads.items():
        lin = (g * shared).sum()
        out[t] = lin - lin.detach() + values[t]
    return out


def _packaged(method: str, **extra):
    """The packaged config (three stages: fk_pos and rot_local weigh 0.07, 0.2275, 0.4025, rot_delta 1 throughout)."""
    cfg = load_config(overrides={"adaptive_loss_method": method, **extra})
    plans = [plan_epoch(cfg, e) for e in range(1, cfg.optim.epochs + 1)]
    fk = [p.weights.w_fk_pos for p in plans]
    assert fk[0] == 0.07 and fk[-1] == 0.4025 and {p.weights.w_rot_delta for p in plans} == {1.0}  # the premise
    return cfg, plans


@pytest.mark.parametrize("method", ["gradnorm", "dwa"])
def test_a_stage_weight_change_is_no_loss_change(method):
    """Every raw loss falls 10% a step (and an epoch) while the packaged stages raise w_fk_pos and w_rot_local:
    no term trains slower than another, so the weights stay equal (GradNorm: with equal weighted gradients)."""
    cfg, plans = _packaged(method)
    ad = AdaptiveLoss(cfg.adaptive)
    assert ad.terms == ("fk_pos", "rot_local", "rot_delta")
    shared = torch.zeros(1, requires_grad=True)  # one number, so each term's gradient is exactly one we choose
    loss = 1.0
    for plan in plans:
        w = plan.weights
        assert w.w_fk_pos == w.w_rot_local
        g = torch.tensor([1.0 / w.w_fk_pos])
        tied = g * w.w_fk_pos  # rot_delta weighs 1: this raw gradient makes its weighted one bitwise the others'
        grads = {"fk_pos": g, "rot_local": g, "rot_delta": tied}
        for _ in range(4):
            loss *= 0.9
            ad.observe(_linear_terms(shared, grads, dict.fromkeys(ad.terms, loss)), w, shared)
            ad.step()
            assert ad.weights().tolist() == pytest.approx([1.0, 1.0, 1.0], abs=1e-6), plan.epoch
        ad.end_epoch([loss] * 3, w)
        assert ad.weights().tolist() == pytest.approx([1.0, 1.0, 1.0], abs=1e-6), plan.epoch


def test_gradnorm_measures_the_norm_of_the_accumulated_gradient():
    """Two micro-batches whose gradients on W are (3, 0) and (-1, 0): the step's gradient is their mean, (1, 0),
    so G = a w ||(1, 0)|| = w, not the sum of the micro-batch norms (4 w)."""
    ad = _adaptive("gradnorm")
    w = LossWeights(w_fk_pos=0.5, w_rot_local=2.0)
    shared = torch.zeros(2, requires_grad=True)
    for g in ([3.0, 0.0], [-1.0, 0.0]):
        grads = {"fk_pos": torch.tensor(g), "rot_local": torch.tensor(g[::-1])}
        ad.observe(_linear_terms(shared, grads, {"fk_pos": 1.0, "rot_local": 1.0}), w, shared, scale=0.5)
    assert ad.grad_norms().tolist() == pytest.approx([0.5, 2.0], rel=1e-6)


def _accum_setups(tiny_config):
    kw = dict(tf_mode="constant", tf_max=1.0, tf_min=1.0, dropout=0.0, freerun_weight=0.0, grad_clip=0.0,
              augmentation={"mirror": False}, adaptive_loss_method="gradnorm")  # fmt: skip
    big, acc = setup(tiny_config(batch=8, **kw)), setup(tiny_config(batch=2, grad_accum_steps=4, **kw))
    T = big.cfg.optim.seq_len
    ws = big.train.window_starts
    whole = ws[ws + T + 1 <= big.train.clip_end[ws]]  # windows no clip end cuts: the two batchings agree
    return big, acc, whole[torch.randperm(len(whole), generator=torch.Generator().manual_seed(0))]


def test_gradnorm_under_accumulation_sees_the_big_batch(tiny_config):
    big, acc, starts = _accum_setups(tiny_config)
    plan = plan_epoch(big.cfg, 1)
    gen = torch.Generator().manual_seed(0)
    # one step first: the heads start at zero, so no term has a gradient on W before it
    train_step(big, starts[8:16].view(1, 8), plan, 1.0, gen)
    train_step(acc, starts[8:16].view(4, 2), plan, 1.0, gen)
    accumulate(big, starts[:8], plan, 1.0, gen)
    for chunk in starts[:8].view(4, 2):
        accumulate(acc, chunk, plan, 1.0, gen, scale=0.25)
    G_big, G_acc = big.adaptive.grad_norms(), acc.adaptive.grad_norms()
    assert (G_big > 0).all()
    torch.testing.assert_close(G_acc, G_big, rtol=1e-4, atol=0)


def test_gradnorm_weights_of_micro_batches_follow_the_big_batch(tiny_config):
    big, acc, starts = _accum_setups(tiny_config)
    plan = plan_epoch(big.cfg, 1)
    for i in range(4):
        s = starts[8 * i : 8 * (i + 1)]
        train_step(big, s.view(1, 8), plan, 1.0, torch.Generator().manual_seed(i))
        train_step(acc, s.view(4, 2), plan, 1.0, torch.Generator().manual_seed(i))
    assert big.adaptive.weights().tolist() != [1.0, 1.0, 1.0]
    torch.testing.assert_close(acc.adaptive.weights(), big.adaptive.weights(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method", ["gradnorm", "dwa", "uncertainty"])
def test_an_inactive_term_neither_moves_nor_moves_the_others(method):
    """The packaged stage 1 gives freerun weight 0, stage 2 0.175: freerun sits out, joins, then sits out again."""
    cfg, plans = _packaged(method, adaptive_loss_terms="fk_pos,rot_local,rot_delta,freerun")
    off, on = plans[0].weights, plans[4].weights
    assert off.freerun_weight == 0 and on.freerun_weight > 0
    ad = AdaptiveLoss(cfg.adaptive)
    shared = torch.zeros(3, requires_grad=True)
    grads = {t: torch.tensor(g) for t, g in zip(ad.terms, ([1.0, 0, 0], [0, 3.0, 0], [0, 0, 0.2], [0.5, 0.5, 0]))}
    losses = {"fk_pos": 1.0, "rot_local": 2.0, "rot_delta": 0.5, "freerun": 0.3}
    decay = {"fk_pos": 0.9, "rot_local": 0.97, "rot_delta": 0.8, "freerun": 0.95}

    def epoch(w: LossWeights) -> None:
        before = ad.weights()
        for _ in range(5):
            for t in losses:
                losses[t] *= decay[t]
            terms = _linear_terms(shared, grads, losses)
            ad.observe(terms, w, shared)
            a = ad.multipliers()
            total = sum(a[t] * getattr(w, k) * terms[t] for t, k in zip(ad.terms, ("w_fk_pos", "w_rot_local",
                        "w_rot_delta", "freerun_weight"))) + ad.regularizer(ad.active(w))  # fmt: skip
            total.backward()
            ad.step()
        ad.end_epoch([losses[t] for t in ad.terms], w)
        after = ad.weights()
        if w.freerun_weight == 0:
            assert float(after[3]) == float(before[3])  # freerun keeps its weight, exactly
            if method != "uncertainty":
                assert float(after[:3].sum()) == pytest.approx(3.0, rel=1e-6)  # the active terms share 3, not 4
        elif method != "uncertainty":
            assert float(after.sum()) == pytest.approx(4.0, rel=1e-6)

    for w in (off, off, off, on, on, on, off, off):
        epoch(w)
    assert ad.weights()[3] != 1.0 and (ad.weights()[:3] != 1.0).all()  # each term moved while it took part


def test_an_old_checkpoint_measured_weighted_losses_and_restarts_their_history():
    ad = _adaptive("gradnorm")
    _toy_steps(ad, 5, 5.0, 1.0)
    state = ad.state_dict()
    assert torch.isfinite(state["initial"]).all()
    del state["losses"]  # as written before the raw losses: its first-step losses are w L
    copy = _adaptive("gradnorm")
    with pytest.warns(UserWarning, match="weighted losses"):
        copy.load_state_dict(state)
    assert torch.equal(copy.weights(), ad.weights()) and torch.isnan(copy.state_dict()["initial"]).all()
