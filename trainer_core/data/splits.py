"""Which clips train, validate and test: whole groups held out by the names' labels, or a hash of clips.

A group split reads a label (style, content, performer...) from each clip name
with a regular expression and holds out every clip of the chosen values, so
validation measures motion of a kind the model never trained on.

``split_for`` is the one split of a config's dataset: training, pre-training,
the long-rollout metric and the sweep report's previews all call it, so they
hold out the same clips.
"""

from __future__ import annotations

import hashlib
import math
import re
import warnings
from dataclasses import dataclass

from trainer_core.config import TrainConfig
from trainer_core.data.clip import Clip
from trainer_core.data.datasets import Dataset
from trainer_core.errors import DataError, did_you_mean
from trainer_core.split_spec import SplitSpec


def _hash_order(names: list[str]) -> list[str]:
    return sorted(names, key=lambda n: hashlib.sha1(n.encode()).hexdigest())


def split_clips(clips: list[Clip], val_fraction: float, min_val_frames: int) -> tuple[list[Clip], list[Clip]]:
    """Whole clips held out for validation, chosen by a hash of their names (stable, order-free).

    Only clips of at least ``min_val_frames`` frames are eligible, so every
    validation clip holds a full free-run window.
    """
    if len(clips) < 2:
        raise DataError(f"the dataset has {len(clips)} clip(s), but training and validation need at least 2")
    eligible = [c for c in clips if c.n_frames >= min_val_frames]
    order = _hash_order([c.name for c in eligible])
    n_val = min(len(eligible), max(1, math.ceil(val_fraction * len(clips))))
    if n_val == 0 or n_val >= len(clips):
        raise DataError(
            f"no clip has the {min_val_frames} frames a validation free-run window needs; "
            "lower `eval_freerun_horizon` or add longer clips"
        )
    val_names = set(order[:n_val])
    return [c for c in clips if c.name not in val_names], [c for c in clips if c.name in val_names]


def clip_groups(clips: list[Clip], spec: SplitSpec) -> dict[str, str]:
    """Clip name -> its value of ``spec.field`` (clips whose names do not match the pattern are left out)."""
    rx = re.compile(spec.pattern)
    out = {}
    for c in clips:
        m = rx.search(c.name)
        if m and m.group(spec.field) is not None:
            out[c.name] = m.group(spec.field)
    return out


def held_out_names(clips: list[Clip], spec: SplitSpec, key: str) -> tuple[set[str], list[str]]:
    """The clip names a ``group`` or ``clips`` spec holds out, and the group values it held out."""
    names = [c.name for c in clips]
    if spec.kind == "clips":
        missing = [n for n in spec.clips if n not in names]
        if missing:
            raise DataError(
                f"`{key}.clips` names {missing[0]!r}, which is not a clip of the dataset"
                f"{did_you_mean(missing[0], names)}"
            )
        return set(spec.clips), []
    groups = clip_groups(clips, spec)
    if not groups:
        raise DataError(
            f'`{key}.pattern` {spec.pattern!r} matches no clip name (e.g. {names[0]!r}); fix the pattern or use "hash"'
        )
    present = sorted(set(groups.values()))
    if spec.values:
        unknown = [v for v in spec.values if v not in present]
        if unknown:
            raise DataError(
                f"`{key}.values` holds {unknown[0]!r}, but the clips' `{spec.field}` values are: {', '.join(present)}"
            )
        held = list(spec.values)
    else:
        held = _hash_order(present)[: max(1, round(spec.fraction * len(present)))]
    return {n for n, g in groups.items() if g in held}, sorted(held)


@dataclass
class Splits:
    """Training, validation and (optional) test clips, and what was held out how."""

    train: list[Clip]
    val: list[Clip]
    test: list[Clip]
    held_out: dict[str, dict]  # "val"/"test" -> the spec and the group values held out


def split_dataset(
    clips: list[Clip], val_split: SplitSpec, val_fraction: float, test_split: SplitSpec | None, min_eval_frames: int
) -> Splits:
    """Hold out the test clips (if any), then the validation clips from the rest; every clip lands in one split.

    A group spec whose pattern matches no clip is an error, except for the default
    ``fraction`` form, which falls back to a hash split of clips with a warning
    (datasets named otherwise than ``content_style_take`` still train).
    """
    held: dict[str, dict] = {}
    pool = list(clips)
    test: list[Clip] = []
    if test_split is not None:
        names, values = held_out_names(pool, test_split, "test_split")
        test = [c for c in pool if c.name in names]
        pool = [c for c in pool if c.name not in names]
        held["test"] = {**test_split.describe(), "held_out": values, "clips": [c.name for c in test]}
        _check_eval_split(test, "test_split", min_eval_frames)
    spec = val_split
    if spec.kind == "group" and not spec.values and not clip_groups(pool, spec):
        warnings.warn(
            f"clip names carry no `{spec.field}` (pattern {spec.pattern!r}, e.g. {pool[0].name!r}); "
            f"validation holds out {val_fraction:.0%} of the clips by a hash of their names instead",
            stacklevel=2,
        )
        spec = SplitSpec("hash")
    if spec.kind == "hash":
        train, val = split_clips(pool, val_fraction, min_eval_frames)
        held["val"] = {"hash": True, "val_fraction": val_fraction, "held_out": [], "clips": [c.name for c in val]}
    else:
        names, values = held_out_names(pool, spec, "val_split")
        val = [c for c in pool if c.name in names]
        train = [c for c in pool if c.name not in names]
        held["val"] = {**spec.describe(), "held_out": values, "clips": [c.name for c in val]}
        _check_eval_split(val, "val_split", min_eval_frames)
    if not train:
        raise DataError("`val_split`/`test_split` hold out every clip; leave some groups for training")
    return Splits(train, val, test, held)


def min_eval_frames(cfg: TrainConfig, fps: float) -> int:
    """Frames a clip needs for one scored free-run window: the first frame (never an input), the start,
    the horizon, and the control window after the last target."""
    return cfg.freerun.eval_freerun_horizon + 2 + max(1, int(round(cfg.data.cond_window_s * fps)))


def check_same_fps(clips: list) -> float:
    """Every clip (training, validation and test alike) has one frame rate; else one clear error."""
    first = clips[0]
    for c in clips[1:]:
        if round(c.fps, 3) != round(first.fps, 3):
            raise DataError(
                f"clips have different frame rates: {first.name} is {first.fps:g} fps, {c.name} is {c.fps:g} fps; "
                "re-import them at one rate (motiontune data import-bvh --fps N)"
            )
    return float(first.fps)


def split_for(cfg: TrainConfig, dataset: Dataset) -> Splits:
    """The clips of ``dataset`` split as a run of ``cfg`` splits them (its ``val_split``, ``val_fraction``,
    ``test_split``; evaluation clips long enough for a free-run window at the dataset's one frame rate)."""
    if len(dataset.clips) < 2:  # before any split falls back with a warning: the error alone says what to fix
        raise DataError(
            f"{dataset.folder}: holds {len(dataset.clips)} clip(s), but training and validation need at least 2; "
            "add clips or pass another --data"
        )
    fps = check_same_fps(dataset.clips)
    return split_dataset(
        dataset.clips, cfg.data.val_split, cfg.data.val_fraction, cfg.data.test_split, min_eval_frames(cfg, fps)
    )


def _check_eval_split(clips: list[Clip], key: str, min_frames: int) -> None:
    if not any(c.n_frames >= min_frames for c in clips):
        raise DataError(
            f"`{key}` holds out {len(clips)} clip(s), but none has the {min_frames} frames a free-run window "
            "needs; hold out other groups or lower `eval_freerun_horizon`"
        )
