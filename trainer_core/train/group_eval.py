"""Free-run error per motion group, every epoch: what the pooled ``FreeRun/GeoDeg`` hides.

The validation clips pooled are mostly locomotion, where the model is far ahead of holding the pose; on
clips of a person standing it can be behind it, and the pooled number does not show it. Each epoch
reports, per motion group ``g`` of ``motion_groups`` (by default ``locomotion`` and ``in-place``):

- ``FreeRun/group/<g>/GeoDeg``: ``FreeRun/GeoDeg`` on that group's validation clips alone;
- ``FreeRun/group/<g>/VsCopyLast``: that, divided by copy-last-frame's on the same windows (below 1: the
  model beats holding the pose).

They go to the metric files and to Tune like every epoch metric, so a sweep can rank on them (e.g.
``--metric FreeRun/GeoDeg --metric FreeRun/group/in-place/VsCopyLast``). The baseline is scored once per
run; an epoch costs one more free run over the validation clips.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trainer_core.data.clip import Clip
from trainer_core.data.device_data import Split, build_split
from trainer_core.data.features import Normalizer
from trainer_core.data.groups import by_group, motion_groups
from trainer_core.data.skeleton import Skeleton
from trainer_core.errors import DataError
from trainer_core.model.model import MotionModel
from trainer_core.model.rollout import Runtime
from trainer_core.split_spec import SPEED_GROUPS, GroupSpec
from trainer_core.train.losses import Kinematics
from trainer_core.train.metrics import baseline, freerun_starts, model_prediction, prediction_metrics

PREFIX = "FreeRun/group/"
NAMES = ("GeoDeg", "VsCopyLast")
OTHER = "other"


def group_metric_names(groups: tuple[str, ...]) -> list[str]:
    """The per-group metric names of groups ``groups``."""
    return [f"{PREFIX}{g}/{n}" for g in groups for n in NAMES]


def spec_groups(spec: GroupSpec | None) -> tuple[str, ...]:
    """Every group ``spec`` can put a clip in, known before any data is read (for checking a sweep's metrics)."""
    if spec is None:
        return ()
    if spec.kind == "speed":
        return SPEED_GROUPS
    return (*(name for name, _ in spec.sets), OTHER)


@dataclass
class GroupValidation:
    """Each group's validation split and copy-last-frame's ``FreeRun/GeoDeg`` on it."""

    splits: dict[str, Split]
    copy_last: dict[str, float]
    horizon: int

    @classmethod
    def create(cls, clips: list[Clip], spec: GroupSpec | None, skeleton: Skeleton, kin: Kinematics,
               norm: Normalizer, seq_len: int, cond_window_s: float, horizon: int,
               device: torch.device) -> GroupValidation | None:  # fmt: skip
        """None without groups; a group none of whose clips holds a whole free-run window is left out."""
        groups = by_group(motion_groups(clips, spec), [c.name for c in clips])
        by_name = {c.name: c for c in clips}
        splits, copy_last = {}, {}
        for g, members in groups.items():
            try:
                split = build_split([by_name[n] for n in members], skeleton, norm, seq_len, cond_window_s, device)
            except DataError:
                continue
            if freerun_starts(split, horizon).numel() == 0:
                continue
            splits[g] = split
            copy_last[g] = baseline(split, kin, horizon)["FreeRun/GeoDeg"]
        return cls(splits, copy_last, horizon) if splits else None

    @torch.no_grad()
    def metrics(self, model: MotionModel, rt: Runtime, kin: Kinematics) -> dict[str, float]:
        was_training = model.training
        model.eval()
        out = {}
        try:
            for g, split in self.splits.items():
                starts = freerun_starts(split, self.horizon)
                pred = model_prediction(model, rt, split, starts, self.horizon)
                value = prediction_metrics(split, kin, starts, pred, "FreeRun/")["FreeRun/GeoDeg"]
                out[f"{PREFIX}{g}/GeoDeg"] = value
                out[f"{PREFIX}{g}/VsCopyLast"] = value / self.copy_last[g] if self.copy_last[g] > 0 else float("nan")
        finally:
            model.train(was_training)
        return out

