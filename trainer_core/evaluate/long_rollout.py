"""``motiontune eval --long``: the ``FreeRun/long`` metrics of a checkpoint (``train.long_eval``, where
they are defined and what every training run validates with), and their table.

The checkpoint's model rolls out ``seconds`` from every clip of the evaluated
folder, against the poses of the clips it trained on (``training_rotations``),
beside copy-last-frame and the ground truth, over all clips and per motion group
(the config's ``motion_groups``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from trainer_core.config import TrainConfig
from trainer_core.data.datasets import load_dataset
from trainer_core.data.device_data import Split
from trainer_core.data.features import Normalizer
from trainer_core.data.skeleton import Skeleton
from trainer_core.data.splits import split_for
from trainer_core.errors import ConfigError
from trainer_core.geometry import rot6d_to_matrix
from trainer_core.model.model import MotionModel
from trainer_core.train.build import build_runtime
from trainer_core.train.long_eval import PREFIX, WHO, long_rollout_metrics


def training_rotations(cfg: TrainConfig) -> torch.Tensor:
    """The local rotations ``(F, J, 3, 3)`` of every frame of a config's training clips (its dataset,
    split as training splits it: ``splits.split_for``)."""
    splits = split_for(cfg, load_dataset(cfg.data.data))
    rot6d = np.concatenate([c.rot6d for c in splits.train])
    return rot6d_to_matrix(torch.from_numpy(rot6d))


def check_seconds(seconds: float) -> None:
    if not (math.isfinite(seconds) and 0 < seconds <= 600):
        raise ConfigError(f"--long is {seconds:g}, but must be in (0, 600] seconds of rollout")


@torch.no_grad()
def checkpoint_long_metrics(
    model: MotionModel, norm: Normalizer, cfg: TrainConfig, skeleton: Skeleton, split: Split, seconds: float,
    device: torch.device, groups: dict[str, str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """``long_rollout_metrics`` of a checkpoint's model (``cfg``: its config) on ``split``, against the
    poses of the clips it trained on; ``groups``: clip name -> motion group."""
    check_seconds(seconds)
    _, rt = build_runtime(cfg, skeleton, norm, split.fps, device)
    return long_rollout_metrics(model, rt, split, skeleton, training_rotations(cfg), seconds,
                                cfg.data.cond_window_s, groups)  # fmt: skip


def format_long(long: dict[str, Any]) -> str:
    """A short table: each ``FreeRun/long`` metric for the model, copy-last-frame and the ground truth, then
    the clips whose rollout diverged (went non-finite), if any, then per motion group the same table."""
    lines = [
        f"{PREFIX[:-1]}: {long['seconds']:g} s rollouts ({long['frames']} frames) from {long['clips']} clips "
        "under their own control (truth: the frames each clip has)",
        *_table(long),
    ]
    for w in WHO:
        if long["diverged"][w]:
            lines.append(f"diverged (non-finite or runaway) {w} rollouts: {', '.join(long['diverged'][w])}")
    for group, entry in long.get("groups", {}).items():
        lines += ["", f"{PREFIX[:-1]}, {group} ({len(entry['clips'])} clips):", *_table(entry)]
    return "\n".join(lines)


def _table(entry: dict[str, Any]) -> list[str]:
    lines = [f"{'':<28}" + "".join(f"{w:>17}" for w in WHO)]
    for k in entry["model"]:
        lines.append(f"{k:<28}" + "".join(_cell(entry[w][k]) for w in WHO))
    return lines


def _cell(v: float | int | None) -> str:
    if v is None:
        return f"{'-':>17}"
    return f"{v:>17d}" if isinstance(v, int) else f"{v:>17.4f}"
