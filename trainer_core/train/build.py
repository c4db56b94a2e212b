"""The parts a training run and an offline evaluation both build: the model, the kinematics, the runtime.

``setup.setup`` builds them for training; ``evaluate.offline`` and
``generate.inference`` rebuild the model from a checkpoint (``model_from_state``),
so all evaluate with the same model, the same FK tensors and the same
mixed-precision setting.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from trainer_core.config import TrainConfig
from trainer_core.data.features import Normalizer, frame_layout
from trainer_core.data.skeleton import Skeleton
from trainer_core.errors import CheckpointError
from trainer_core.model.model import Arch, MotionModel
from trainer_core.model.rollout import Runtime
from trainer_core.train.losses import Kinematics


def build_model(arch: Arch, norm: Normalizer, device: torch.device) -> MotionModel:
    """A fresh ``MotionModel`` on ``device`` whose contact head undoes ``norm``'s contact normalization and
    whose trajectory head reads the control in ``norm``'s units."""
    model = MotionModel(arch)
    model.set_contact_stats(*norm.segment_stats("contacts"))
    model.set_control_stats(norm.c_mean, norm.c_std, *norm.traj_stats())
    return model.to(device)


class WeightAverage:
    """An exponential moving average of a model's weights (``ema_decay``): after each optimizer step the
    average moves ``1 - d`` of the way to the trained weights, ``d = min(ema_decay, n / (n + 1))`` after
    ``n`` steps: the plain mean of the steps so far until ``1 / (1 - ema_decay)`` of them are in, so the
    average never leans on the untrained start. The average (``model``, always in eval mode) is what
    validation scores and checkpoints hold as the run's model."""

    def __init__(self, model: MotionModel, decay: float):
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, trained: MotionModel) -> None:
        d = min(self.decay, self.updates / (self.updates + 1))
        for avg, w in zip(self.model.parameters(), trained.parameters()):
            avg.lerp_(w, 1.0 - d)
        self.updates += 1

    def load(self, weights: dict[str, torch.Tensor], updates: int) -> None:
        self.model.load_state_dict(weights)
        self.updates = updates


def model_from_state(state: dict[str, Any], where: str, device: torch.device) -> tuple[MotionModel, Normalizer]:
    """The trained model of a checkpoint or exported model ``state`` (its ``arch``, ``normalizer`` and
    ``model_state_dict``) on ``device``, in eval mode, and its normalizer; ``where`` names the file in errors."""
    try:
        arch = Arch(**state["arch"])
    except TypeError as e:
        raise CheckpointError(f"{where}: `arch` is not this version's ({e})") from None
    norm = Normalizer.from_dict(state["normalizer"], frame_layout(arch.n_joints), f"{where} (normalizer)")
    model = build_model(arch, norm, device)
    try:
        model.load_state_dict(state["model_state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"{where}: weights do not fit the stored `arch` ({str(e).splitlines()[0]})") from None
    model.eval()
    return model, norm


def build_runtime(
    cfg: TrainConfig, skeleton: Skeleton, norm: Normalizer, fps: float, device: torch.device
) -> tuple[Kinematics, Runtime]:
    """The skeleton's FK tensors and the step runtime (normalizer, ``fps`` frames/s, phase bins, AMP)."""
    kin = Kinematics.create(skeleton, device)
    rt = Runtime.create(norm, fps, cfg.model.phase_bins, device, cfg.run.amp)
    return kin, rt
