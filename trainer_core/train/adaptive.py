"""Adaptive loss weights: a multiplier on the configured ``w_*`` of each chosen term.

The loss stays ``sum_t w_t L_t`` over every term; for the terms in
``adaptive_loss_terms`` it becomes ``sum_t a_t w_t L_t`` (+ a regulariser for
``uncertainty``), where ``a_t`` is the adaptive weight. ``L_t`` is a term's *raw
loss* (logged as ``adaptive_loss/<term>/raw_loss``), ``l_t = w_t L_t`` its *base
loss* (``adaptive_loss/<term>/base_loss``), ``a_t`` its weight
(``adaptive_loss/<term>/weight``). A term whose configured weight is 0 in the
current stage is *inactive*: it neither moves nor moves the others' weights; the
``K`` below counts the active terms only.

Rates of training compare raw losses ``L_t``, as in both papers: a stage that
raises ``w_t`` changes the weighting, not how fast the term trains.

- ``gradnorm`` (Chen et al., ICML 2018). ``a`` starts at 1 and is trained by Adam
  (``ADAPTIVE_LR``) after each optimizer step so that each term's gradient norm
  ``G_t = a_t ||d l_t / d W||`` on the last shared layer ``W`` (the trunk's linear
  layer) moves toward ``mean(G) * r_t ** alpha``, where ``r_t`` is the term's
  loss ratio ``L_t / L_t(first step)`` over the mean ratio: a term with a larger
  gradient than the others loses weight; with ``alpha > 0`` a term that trains
  slower (higher ratio) gains weight. Then ``a`` is clamped to ``>= A_MIN`` and
  the active terms' weights renormalised to sum to ``K``. With gradient
  accumulation ``d l_t / d W`` and ``L_t`` are those of the whole step (the mean
  over its micro-batches), so N micro-batches of B see what one batch of N*B does.
- ``uncertainty`` (Kendall et al., CVPR 2018). A learned log-variance ``s_t``
  per term (Adam, ``ADAPTIVE_LR``) and the loss ``exp(-s_t) l_t + s_t``, whose
  optimum is ``a_t = exp(-s_t) = 1 / l_t``: a term with a larger (noisier) loss
  gets a smaller weight. ``s`` is clamped to ``[-LOGVAR_MAX, LOGVAR_MAX]``.
- ``dwa`` (Liu et al., CVPR 2019). Fixed within an epoch:
  ``a_t = K exp(r_t / T) / sum_k exp(r_k / T)`` over the active terms, with ``r_t``
  the ratio of the term's mean raw loss over the last two epochs; 1 for the
  first two epochs. A term whose loss falls slower gets more weight.

Everything needed to continue is in ``state_dict`` (stored in checkpoints).
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import torch
from torch import nn

from trainer_core.config import TERM_KEYS, AdaptiveLossConfig, LossWeights
from trainer_core.errors import CheckpointError

ADAPTIVE_LR = 0.025  # Adam learning rate of the GradNorm weights and the log-variances (GradNorm's paper uses 0.025)
A_MIN = 1e-3  # GradNorm weights are kept at or above this, so they stay positive
LOGVAR_MAX = 10.0  # |log-variance| bound: uncertainty weights stay in [e^-10, e^10]
LOSSES = "raw"  # what the stored loss history (GradNorm's first losses, DWA's epochs) holds; older states held w L


def shared_layer(model: nn.Module) -> torch.Tensor:
    """The last layer every head shares: the trunk's linear weight (GradNorm's ``W``)."""
    return model.trunk[0].weight  # type: ignore[index]


class AdaptiveLoss:
    """The adaptive weights of one run; ``method == "none"`` multiplies by 1 and adds nothing."""

    def __init__(self, cfg: AdaptiveLossConfig, device: torch.device | str = "cpu"):
        self.method = cfg.adaptive_loss_method
        self.terms = cfg.adaptive_loss_terms if cfg.active else ()
        self.alpha = cfg.adaptive_loss_alpha
        self.temperature = cfg.adaptive_loss_temperature
        n = len(self.terms)
        self.param: torch.Tensor | None = None
        self.opt: torch.optim.Optimizer | None = None
        if self.method in ("gradnorm", "uncertainty"):
            init = torch.ones(n) if self.method == "gradnorm" else torch.zeros(n)
            self.param = init.to(device).requires_grad_(True)
            self.opt = torch.optim.Adam([self.param], lr=ADAPTIVE_LR)
        self.dwa = torch.ones(n, device=device)
        self.epoch_losses: list[list[float]] = []  # DWA: mean raw loss per term, the last two epochs
        self.initial = torch.full((n,), math.nan, device=device)  # GradNorm: each term's first raw loss
        self._grad: torch.Tensor | None = None  # GradNorm: (K, *W.shape) this step's d l_t / d W, micro-batches summed
        self._lsum = torch.zeros(n, device=device)  # GradNorm: this step's L_t, micro-batches summed (each scaled)
        self._active = torch.ones(n, dtype=torch.bool, device=device)  # the terms active in the last observe

    @property
    def on(self) -> bool:
        return bool(self.terms)

    def weights(self) -> torch.Tensor:
        """``(K,)`` the current adaptive weights, detached."""
        with torch.no_grad():
            if self.method == "gradnorm":
                return self.param.detach().clone()
            if self.method == "uncertainty":
                return torch.exp(-self.param.detach())
            return self.dwa.clone()

    def active(self, weights: LossWeights) -> torch.Tensor:
        """``(K,)`` bool: the terms whose configured weight is positive in this epoch."""
        return torch.tensor([getattr(weights, TERM_KEYS[t]) > 0 for t in self.terms], device=self.dwa.device)

    def configured(self, weights: LossWeights) -> list[float]:
        """Each term's configured ``w_t`` in ``weights``."""
        return [float(getattr(weights, TERM_KEYS[t])) for t in self.terms]

    def multipliers(self) -> dict[str, torch.Tensor]:
        """Term -> the factor on its ``w_*``; carries the gradient to the log-variances for ``uncertainty``."""
        if self.method == "uncertainty":
            a = torch.exp(-self.param)
        else:
            a = self.weights()
        return {t: a[i] for i, t in enumerate(self.terms)}

    def regularizer(self, active: torch.Tensor) -> torch.Tensor:
        """``sum s_t`` over active terms for ``uncertainty``; 0 otherwise."""
        if self.method != "uncertainty":
            return torch.zeros((), device=self.dwa.device)
        return (self.param * active).sum()

    def observe(
        self, raw: dict[str, torch.Tensor], weights: LossWeights, shared: torch.Tensor, scale: float = 1.0
    ) -> None:
        """One micro-batch, before its backward: ``raw`` holds each term's raw loss ``L_t`` (unweighted),
        ``weights`` the stage's ``w_*``, ``scale`` the micro-batch's share of the step (``1 / N`` of N).

        GradNorm adds ``scale`` times each active term's gradient of ``w_t L_t`` on ``shared`` and of
        its ``L_t``, so the step's sums are those of the step's (mean) loss."""
        self._active = self.active(weights)
        if self.method != "gradnorm":
            return
        if self._grad is None or self._grad.shape[1:] != shared.shape:
            self._grad = torch.zeros((len(self.terms), *shared.shape), device=self.dwa.device)
        for i, (t, w) in enumerate(zip(self.terms, self.configured(weights))):
            if w <= 0 or not raw[t].requires_grad:  # inactive, or no graph (free run longer than the window)
                continue
            (g,) = torch.autograd.grad(raw[t], shared, retain_graph=True, allow_unused=True)
            if g is not None:
                self._grad[i] += (scale * w) * g.float()
            self._lsum[i] += scale * raw[t].detach().float()

    def grad_norms(self) -> torch.Tensor:
        """``(K,)`` GradNorm's ``G_t = a_t ||d l_t / d W||`` of the step observed so far (0 for a term not seen)."""
        if self._grad is None:
            return torch.zeros(len(self.terms), device=self.dwa.device)
        return self.weights() * self._grad.flatten(1).norm(dim=1)

    def step(self) -> None:
        """After the model's optimizer step: move the GradNorm weights or the log-variances."""
        if self.method == "uncertainty":
            self._adam_step(self._active)
            with torch.no_grad():
                self.param.clamp_(-LOGVAR_MAX, LOGVAR_MAX)
        elif self.method == "gradnorm":
            self._gradnorm_step()

    def _adam_step(self, act: torch.Tensor) -> None:
        """Adam on ``param``, then the entries of terms outside ``act`` put back: Adam's momentum from an
        earlier stage would move them with no gradient of their own."""
        keep = self.param.detach().clone()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            self.param.copy_(torch.where(act, self.param, keep))

    def _gradnorm_step(self) -> None:
        g = torch.zeros_like(self._lsum) if self._grad is None else self._grad.flatten(1).norm(dim=1)
        loss = self._lsum
        act = self._active & (g > 0)
        self._grad, self._lsum = None, torch.zeros_like(loss)
        if int(act.sum()) < 2:  # one term has nothing to balance against
            return
        with torch.no_grad():
            first = torch.isnan(self.initial) & act
            self.initial[first] = loss[first].clamp_min(1e-12)
            ratio = loss / self.initial
            ratio = torch.where(act, ratio, torch.zeros_like(ratio))
            rel = ratio / ratio[act].mean()
            G = self.param.detach() * g
            target = G[act].mean() * rel.clamp_min(0).pow(self.alpha)
        G_live = self.param * g
        grad_loss = ((G_live - target).abs() * act).sum()
        self.opt.zero_grad(set_to_none=True)
        grad_loss.backward()
        self._adam_step(act)
        with torch.no_grad():
            a = self.param.clamp(min=A_MIN)
            a = torch.where(act, a * (int(act.sum()) / a[act].sum()), self.param)
            self.param.copy_(a)

    def end_epoch(self, raw_means: list[float], weights: LossWeights) -> None:
        """After an epoch, with each term's mean raw loss and the epoch's ``w_*``: DWA sets the next epoch's
        weights of the terms active in it; an inactive term keeps its weight."""
        if self.method != "dwa":
            return
        self.epoch_losses = [*self.epoch_losses, list(raw_means)][-2:]
        act = self.active(weights).cpu()
        if len(self.epoch_losses) < 2 or not bool(act.any()):
            return
        prev, last = self.epoch_losses
        r = torch.tensor([(b / a) if a > 0 and b > 0 else 1.0 for a, b in zip(prev, last)], dtype=torch.float64)
        w = self.dwa.detach().to("cpu", torch.float64, copy=True)
        w[act] = torch.softmax(r[act] / self.temperature, dim=0) * int(act.sum())
        self.dwa = w.to(self.dwa.dtype).to(self.dwa.device)

    def epoch_metrics(self, raw_means: list[float], weights: LossWeights) -> dict[str, float]:
        """``adaptive_loss/<term>/weight``, ``/base_loss`` (``w L``) and ``/raw_loss`` (``L``) for an epoch."""
        out: dict[str, float] = {}
        for t, a, w, raw in zip(self.terms, self.weights().tolist(), self.configured(weights), raw_means):
            out[f"adaptive_loss/{t}/weight"] = a
            out[f"adaptive_loss/{t}/base_loss"] = w * raw
            out[f"adaptive_loss/{t}/raw_loss"] = raw
        return out

    def state_dict(self) -> dict[str, Any]:
        """A copy (never sharing tensors with the live state) of everything ``load_state_dict`` needs."""
        return {
            "method": self.method,
            "terms": list(self.terms),
            "param": None if self.param is None else self.param.detach().cpu().clone(),
            "optimizer": None if self.opt is None else copy.deepcopy(self.opt.state_dict()),
            "dwa": self.dwa.cpu().clone(),
            "epoch_losses": [list(x) for x in self.epoch_losses],
            "initial": self.initial.cpu().clone(),
            "losses": LOSSES,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["method"] != self.method or list(state["terms"]) != list(self.terms):
            raise CheckpointError(
                f"the checkpoint's adaptive loss state is {state['method']} over {state['terms']}, but the config "
                f"asks for {self.method} over {list(self.terms)}; resume with the checkpoint's own config"
            )
        dev = self.dwa.device
        if self.param is not None:
            with torch.no_grad():
                self.param.copy_(state["param"].to(dev))
            self.opt.load_state_dict(state["optimizer"])
        self.dwa = state["dwa"].to(dev)
        self.epoch_losses = [list(x) for x in state["epoch_losses"]]
        self.initial = state["initial"].to(dev)
        if state.get("losses") != LOSSES:
            warnings.warn(
                "the checkpoint's adaptive loss state compared weighted losses (w L), which read a stage's weight "
                "change as a loss change; its loss history (GradNorm's first losses, DWA's last epochs) starts "
                "again from here on raw losses, its weights carry on",
                stacklevel=2,
            )
            self.epoch_losses = []
            self.initial = torch.full_like(self.initial, math.nan)
