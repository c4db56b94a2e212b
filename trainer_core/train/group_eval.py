"""Free-run error per motion group, every epoch: what the pooled ``FreeRun/GeoDeg`` hides.

The validation clips pooled are mostly locomotion, where the model is far ahead of holding the pose; on
clips of a person standing it can be behind it, and the pooled number does not show it. Each epoch
reports, per motion group ``g`` of ``motion_groups`` (by default ``locomotion`` and ``in-place``):

- ``FreeRun/group/<g>/GeoDeg``: ``FreeRun/GeoDeg`` over that group's validation windows alone;
- ``FreeRun/group/<g>/VsCopyLast``: that, divided by copy-last-frame's on the same windows (below 1: the
  model beats holding the pose).

They go to the metric files and to Tune like every epoch metric, so a sweep can rank on them (e.g.
``--metric FreeRun/GeoDeg --metric FreeRun/group/in-place/VsCopyLast``). They are scored from the epoch's
pooled free run (``metrics.evaluate`` with ``WindowGroups``), so they cost no extra rollout; copy-last-frame
is scored once per run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from trainer_core.data.clip import Clip
from trainer_core.data.device_data import Split
from trainer_core.data.groups import motion_groups
from trainer_core.split_spec import SPEED_GROUPS, GroupSpec
from trainer_core.train.metrics import WindowGroups, copy_last_prediction, freerun_starts
from trainer_core.train.metrics_io import GROUP_PREFIX

NAMES = ("GeoDeg", "VsCopyLast")
OTHER = "other"


def group_metric_names(groups: tuple[str, ...]) -> list[str]:
    """The per-group metric names of groups ``groups``."""
    return [f"{GROUP_PREFIX}{g}/{n}" for g in groups for n in NAMES]


def spec_groups(spec: GroupSpec | None) -> tuple[str, ...]:
    """Every group ``spec`` can put a clip in, known before any data is read (for checking a sweep's metrics)."""
    if spec is None:
        return ()
    if spec.kind == "speed":
        return SPEED_GROUPS
    return (*(name for name, _ in spec.sets), OTHER)


@dataclass
class GroupValidation:
    """The validation split's frames by group, and copy-last-frame's ``FreeRun/GeoDeg`` per group."""

    windows: WindowGroups
    copy_last: dict[str, float]

    @classmethod
    def create(cls, split: Split, clips: list[Clip], spec: GroupSpec | None, horizon: int) -> GroupValidation | None:
        """``split`` built from ``clips`` (in order). None without groups, or when no group holds a free-run
        window; a group without one is left out."""
        groups = motion_groups(clips, spec)
        if not groups:
            return None
        lengths = torch.tensor([c.n_frames for c in clips])
        clip_of_frame = torch.repeat_interleave(torch.arange(len(clips)), lengths).to(split.clip_begin.device)
        starts = freerun_starts(split, horizon)
        names = tuple(sorted({groups[clips[i].name] for i in clip_of_frame[starts].unique().tolist()}))
        if not names:
            return None
        per_clip = torch.tensor([names.index(groups[c.name]) if groups[c.name] in names else -1 for c in clips])
        windows = WindowGroups(per_clip.to(clip_of_frame.device)[clip_of_frame], names)
        copy_last = windows.geo_deg(split, copy_last_prediction(split, starts, horizon), starts)
        return cls(windows, copy_last)

    def ratios(self, metrics: dict[str, float]) -> dict[str, float]:
        """``FreeRun/group/<g>/VsCopyLast`` from the epoch's ``FreeRun/group/<g>/GeoDeg`` in ``metrics``."""
        out = {}
        for g, base in self.copy_last.items():
            value = metrics[f"{GROUP_PREFIX}{g}/GeoDeg"]
            out[f"{GROUP_PREFIX}{g}/VsCopyLast"] = value / base if base > 0 else math.nan
        return out
