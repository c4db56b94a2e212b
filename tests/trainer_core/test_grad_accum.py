"""Gradient accumulation: batch B with N micro-batches is batch N*B, in its windows and in its gradients."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from trainer_core.train.loop import accumulate, epoch_batches, train_step
from trainer_core.train.schedules import plan_epoch
from trainer_core.train.setup import setup


def _grads(model):
    return [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]


def test_four_micro_batches_give_the_gradient_of_one_big_batch(tiny_config):
    # tf 1 (no sampled inputs), no dropout, no augmentation: every draw is the same either way
    cfg = tiny_config(tf_mode="constant", tf_max=1.0, tf_min=1.0, dropout=0.0, freerun_weight=0.2, batch=16,
                      augmentation={"mirror": False})  # fmt: skip
    s = setup(cfg)
    T = cfg.optim.seq_len
    whole = s.train.window_starts[s.train.window_starts + T + 1 <= s.train.clip_end[s.train.window_starts]]
    starts = whole[torch.randperm(len(whole), generator=torch.Generator().manual_seed(0))[:16]]
    plan = plan_epoch(cfg, 1)
    gen = torch.Generator().manual_seed(1)

    s.model.zero_grad(set_to_none=True)
    big_loss, big_terms = accumulate(s, starts, plan, 1.0, gen)
    big = _grads(s.model)
    s.model.zero_grad(set_to_none=True)
    losses = [accumulate(s, chunk, plan, 1.0, gen, scale=0.25)[0] for chunk in starts.view(4, 4)]
    small = _grads(s.model)

    assert float(sum(losses) / 4) == pytest.approx(float(big_loss), rel=1e-5)
    assert big_terms[-1] > 0  # the free-run term takes part
    for g_big, g_small in zip(big, small):
        torch.testing.assert_close(g_small, g_big, rtol=1e-4, atol=1e-6)


def test_accumulation_draws_the_windows_of_the_big_batch(tiny_config):
    big = setup(tiny_config(batch=16))
    acc = dataclasses.replace(big, cfg=tiny_config(batch=4, grad_accum_steps=4))
    a = epoch_batches(big, torch.Generator().manual_seed(3))
    b = epoch_batches(acc, torch.Generator().manual_seed(3))
    assert len(a) == len(b) == 3  # steps_per_epoch counts optimizer steps
    assert [x.shape for x in b] == [torch.Size([4, 4])] * 3
    assert all(torch.equal(x.flatten(), y.flatten()) for x, y in zip(a, b))


def test_one_step_with_accumulation_matches_the_big_batch_step(tiny_config):
    kw = dict(tf_mode="constant", tf_max=1.0, tf_min=1.0, dropout=0.0, freerun_weight=0.0, grad_clip=0.0,
              augmentation={"mirror": False})  # each micro-batch draws its own mirror flips  # fmt: skip
    big, acc = setup(tiny_config(batch=8, **kw)), setup(tiny_config(batch=2, grad_accum_steps=4, **kw))
    T = big.cfg.optim.seq_len
    ws = big.train.window_starts
    starts = ws[ws + T + 1 <= big.train.clip_end[ws]][:8]
    plan = plan_epoch(big.cfg, 1)
    train_step(big, starts.view(1, 8), plan, 1.0, torch.Generator().manual_seed(0))
    train_step(acc, starts.view(4, 2), plan, 1.0, torch.Generator().manual_seed(0))
    for p, q in zip(big.model.parameters(), acc.model.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)
