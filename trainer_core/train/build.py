"""The parts a training run and an offline evaluation both build: the model, the kinematics, the runtime.

``loop.setup`` builds them for training; ``evaluate.offline`` rebuilds them from
a checkpoint, so both evaluate with the same model, the same FK tensors and the
same mixed-precision setting.
"""

from __future__ import annotations

import torch

from trainer_core.config import TrainConfig
from trainer_core.data.features import Normalizer
from trainer_core.data.skeleton import Skeleton
from trainer_core.model.model import Arch, MotionModel
from trainer_core.model.rollout import Runtime
from trainer_core.train.losses import Kinematics


def build_model(arch: Arch, norm: Normalizer, device: torch.device) -> MotionModel:
    """A fresh ``MotionModel`` on ``device`` whose contact head undoes ``norm``'s contact normalization."""
    model = MotionModel(arch)
    model.set_contact_stats(*norm.segment_stats("contacts"))
    return model.to(device)


def build_runtime(
    cfg: TrainConfig, skeleton: Skeleton, norm: Normalizer, fps: float, device: torch.device
) -> tuple[Kinematics, Runtime]:
    """The skeleton's FK tensors and the step runtime (normalizer, ``fps`` frames/s, phase bins, AMP)."""
    kin = Kinematics.create(skeleton, device)
    rt = Runtime.create(norm, fps, cfg.model.phase_bins, device, cfg.run.amp)
    return kin, rt
