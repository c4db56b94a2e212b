"""Offline evaluation: a trained checkpoint on every clip of any dataset folder, against the baselines.

The same code as the evaluation during training (``train.metrics.evaluate`` and
``train.metrics.baselines`` on a ``Split``), with the checkpoint's own normalizer
(never refit on the evaluated clips) and the model, kinematics and runtime
built as training builds them. The overall numbers come from one split of all
clips, so they weigh every counted step exactly as training's validation does:
evaluating a run's validation clips gives its in-training metrics back. Each
clip is also evaluated as a split of its own.

Skeletons must match: same bone names in the same order as the model was
trained on (checkpoints before ``skeleton_bones`` was stored: the same joint
count).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from trainer_core.config import TrainConfig
from trainer_core.config_load import config_from_dict
from trainer_core.data.clip import Clip
from trainer_core.data.datasets import Dataset, load_dataset
from trainer_core.data.device_data import Split, build_split
from trainer_core.data.features import Normalizer
from trainer_core.data.groups import by_group, motion_groups
from trainer_core.data.skeleton import HIERARCHY_FILE, first_bone_mismatch
from trainer_core.device import resolve_device
from trainer_core.errors import ConfigError, DataError
from trainer_core.evaluate.long_rollout import check_seconds, checkpoint_long_metrics, format_long
from trainer_core.model.model import MotionModel
from trainer_core.train import checkpoint as ckpt
from trainer_core.train.build import build_runtime, model_from_state
from trainer_core.train.metrics import baselines, evaluate, freerun_starts, teacher_starts
from trainer_core.train.metrics_io import FREERUN_PREFIX

PRIMARY_BASELINE = "copy-last-frame"


def check_skeleton(state: dict[str, Any], dataset: Dataset, where: str) -> None:
    """Raise ``DataError`` naming the first joint where ``dataset``'s bones differ from the checkpoint's."""
    bones = state.get("skeleton_bones")
    hierarchy = dataset.folder / HIERARCHY_FILE
    fix = "evaluate on clips of the model's skeleton (the same joint names in the same order)"
    if bones is None:  # older checkpoints know only the joint count
        n = int(state["arch"]["n_joints"])
        if n != dataset.skeleton.n_joints:
            raise DataError(
                f"{hierarchy}: the skeleton has {dataset.skeleton.n_joints} joints, but the model in {where} "
                f"was trained on {n}; {fix}"
            )
        return
    found = first_bone_mismatch(bones, dataset.skeleton.bones, where)
    if found is not None:
        raise DataError(f"{hierarchy}: {found}; {fix}")


def _ratio(model: dict[str, float | None], base: dict[str, float | None]) -> dict[str, float | None]:
    """``model / base`` per metric both report (lower is better for each); None where undefined."""
    out: dict[str, float | None] = {}
    for k, v in model.items():
        if k not in base:
            continue
        b = base[k]
        out[k] = v / b if v is not None and b is not None and b != 0 and math.isfinite(v / b) else None
    return out


def _scored(
    model: MotionModel, norm: Normalizer, cfg: TrainConfig, dataset: Dataset, split: Split, horizon: int,
    device: torch.device,
) -> dict[str, Any]:  # fmt: skip
    """Model and baseline metrics on ``split``; values of a mode with no counted step are None."""
    kin, rt = build_runtime(cfg, dataset.skeleton, norm, split.fps, device)
    n_teacher = int(teacher_starts(split).numel())
    n_windows = int(freerun_starts(split, horizon).numel())

    def blank(metrics: dict[str, float]) -> dict[str, float | None]:
        def counted(k: str) -> bool:
            return n_windows > 0 if k.startswith(FREERUN_PREFIX) else n_teacher > 0

        return {k: (v if counted(k) else None) for k, v in metrics.items()}

    scores = blank(evaluate(model, rt, kin, split, horizon))
    bases = {name: blank(m) for name, m in baselines(split, kin, horizon).items()}
    return {
        "frames": split.n_frames,
        "teacher_steps": n_teacher,
        "freerun_windows": n_windows,
        "freerun_frames": n_windows * horizon,
        "model": scores,
        "baselines": bases,
        "ratio": {name: _ratio(scores, b) for name, b in bases.items()},
    }


def _clip_split(clip: Clip, dataset: Dataset, norm: Normalizer, cfg: TrainConfig, device: torch.device) -> Split:
    return build_split([clip], dataset.skeleton, norm, cfg.optim.seq_len, cfg.data.cond_window_s, device)


@torch.no_grad()
def evaluate_checkpoint(
    checkpoint: str | Path,
    data: str | Path | None,
    horizon: int | None = None,
    device: str | None = None,
    long_s: float | None = None,
) -> dict[str, Any]:
    """Teacher and free-run metrics of a trained model on every clip of a dataset folder.

    Args:
        checkpoint: ``best_model.pt`` or ``checkpoint_epoch_N.pt`` of a training run.
        data: a dataset folder (clip ``.npz`` files, ``FullHierarchy.json``,
            ``FullOffsets.json``) of the model's skeleton; None: the bundled one.
        horizon: free-run frames per window; None: the checkpoint config's
            ``eval_freerun_horizon``.
        device: ``auto``, ``cpu``, ``cuda[:N]``; None: the checkpoint config's.
        long_s: also roll out this many seconds from every clip and report ``long``, the
            ``FreeRun/long`` metrics (``train.long_eval``), overall and per motion group; None: not.

    Returns:
        A JSON-ready dict: ``checkpoint``, ``epoch``, ``horizon``, ``device``,
        ``data`` (folder, fingerprint, clip and frame counts), ``overall``,
        ``groups`` (motion group of the config's ``motion_groups``, e.g. ``locomotion`` and
        ``in-place`` -> the same entry for its clips alone, with ``clips`` their names) and
        ``clips`` (clip name -> the same entry for that clip alone). An entry
        holds ``frames``, ``teacher_steps`` and ``freerun_windows`` (the counted
        teacher steps and free-run windows; each window counts ``horizon``
        frames), ``model`` (metric -> value, the names of the training metric
        files: ``GeoDeg`` degrees, ``RootVelMAE`` m/s, ``FreeRun/...`` ...),
        ``baselines`` (baseline name -> metrics, ``copy-last-frame`` among
        them) and ``ratio`` (baseline name -> model / baseline per metric;
        below 1 beats it). A mode with no counted step in a clip (a clip
        shorter than a free-run window) has None values; a clip too short to
        evaluate at all holds only ``frames`` and ``skipped`` (the reason).

    Raises:
        CheckpointError: the checkpoint is missing, unreadable or not a motiontune checkpoint.
        ConfigError: ``horizon`` < 1.
        DataError: the folder holds no clips, its skeleton is not the model's
            (the first mismatched joint is named), or no clip has a full free-run window.
    """
    where = str(checkpoint)
    state = ckpt.load(Path(checkpoint))
    cfg = config_from_dict(state["config"], f"{where} (stored config)")
    if horizon is None:
        horizon = cfg.freerun.eval_freerun_horizon
    if horizon < 1:
        raise ConfigError(f"--horizon is {horizon}, but must be >= 1 (free-run frames per window)")
    if long_s is not None:
        check_seconds(long_s)
    dataset = load_dataset(data)
    check_skeleton(state, dataset, where)
    dev = resolve_device(device or cfg.run.device)
    model, norm = model_from_state(state, where, dev)
    split = build_split(dataset.clips, dataset.skeleton, norm, cfg.optim.seq_len, cfg.data.cond_window_s, dev)
    if freerun_starts(split, horizon).numel() == 0:
        longest = max(c.n_frames for c in dataset.clips)
        raise DataError(
            f"{dataset.folder}: no clip holds a full free-run window of {horizon} frames (the longest has "
            f"{longest} frames); pass a smaller --horizon or add longer clips"
        )
    overall = _scored(model, norm, cfg, dataset, split, horizon, dev)
    groups: dict[str, Any] = {}
    members = by_group(motion_groups(dataset.clips, cfg.data.motion_groups), [c.name for c in dataset.clips])
    for group, names in members.items():
        try:
            group_split = build_split([c for c in dataset.clips if c.name in set(names)], dataset.skeleton, norm,
                                      cfg.optim.seq_len, cfg.data.cond_window_s, dev)  # fmt: skip
        except DataError as e:
            groups[group] = {"clips": names, "skipped": str(e)}
            continue
        groups[group] = {"clips": names, **_scored(model, norm, cfg, dataset, group_split, horizon, dev)}
    clips: dict[str, Any] = {}
    for clip in dataset.clips:
        try:
            clip_split = _clip_split(clip, dataset, norm, cfg, dev)
        except DataError as e:  # too short for any step
            clips[clip.name] = {"frames": clip.n_frames, "skipped": str(e)}
            continue
        clips[clip.name] = _scored(model, norm, cfg, dataset, clip_split, horizon, dev)
    result = {
        "checkpoint": where,
        "epoch": state["epoch"],
        "horizon": horizon,
        "device": str(dev),
        "data": {
            "folder": str(dataset.folder),
            "fingerprint": dataset.fingerprint,
            "clips": len(dataset.clips),
            "frames": split.n_frames,
        },
        "overall": overall,
        "groups": groups,
        "clips": clips,
    }
    if long_s is not None:
        result["long"] = checkpoint_long_metrics(model, norm, cfg, dataset.skeleton, split, long_s, dev,
                                                 motion_groups(dataset.clips, cfg.data.motion_groups))
    return result


def _fmt(v: float | None, width: int, digits: int = 3) -> str:
    return f"{'-':>{width}}" if v is None else f"{v:>{width}.{digits}f}"


def _geo_row(head: str, e: dict[str, Any], keys: tuple[str, ...], baseline: str) -> str:
    """``head``, then per key the model's value, the baseline's and their ratio (or "skipped")."""
    if "skipped" in e:
        return f"{head}   skipped: too short"
    for k in keys:
        head += _fmt(e["model"][k], len(k) + 3) + _fmt(e["baselines"][baseline][k], len(baseline) + 3)
        head += _fmt(e["ratio"][baseline][k], 7, 2)
    return head


def format_table(result: dict[str, Any], baseline: str = PRIMARY_BASELINE) -> str:
    """A short text table: overall metrics beside every baseline, then per clip ``GeoDeg`` and
    ``FreeRun/GeoDeg`` beside ``baseline``. Ratios are model / baseline (below 1 beats it)."""
    ov = result["overall"]
    names = [baseline, *(n for n in ov["baselines"] if n != baseline)]
    lines = [
        f"{result['checkpoint']} (epoch {result['epoch']}) on {result['data']['clips']} clips, "
        f"{result['data']['frames']} frames of {result['data']['folder']}; free-run horizon {result['horizon']}",
        "",
        f"{'overall':<24}{'model':>10}" + "".join(f"{n:>{len(n) + 3}}{'ratio':>7}" for n in names),
    ]
    for k in ov["ratio"][baseline]:
        row = f"{k:<24}{_fmt(ov['model'][k], 10)}"
        for n in names:
            row += f"{_fmt(ov['baselines'][n].get(k), len(n) + 3)}{_fmt(ov['ratio'][n].get(k), 7, 2)}"
        lines.append(row)
    keys = ("GeoDeg", f"{FREERUN_PREFIX}GeoDeg")
    if result.get("groups"):
        lines += ["", f"{'group':<24}{'clips':>7}" + "".join(f"{k:>{len(k) + 3}}{baseline:>{len(baseline) + 3}}"
                                                           f"{'ratio':>7}" for k in keys)]  # fmt: skip
        for name, e in result["groups"].items():
            lines.append(_geo_row(f"{name:<24}{len(e['clips']):>7}", e, keys, baseline))
    name_w = max([len("clip"), *(len(n) for n in result["clips"])]) + 2
    lines += ["", f"{'clip':<{name_w}}{'frames':>7}" + "".join(f"{k:>{len(k) + 3}}{baseline:>{len(baseline) + 3}}"
                                                              f"{'ratio':>7}" for k in keys)]  # fmt: skip
    for name, e in result["clips"].items():
        lines.append(_geo_row(f"{name:<{name_w}}{e['frames']:>7}", e, keys, baseline))
    if "long" in result:
        lines += ["", format_long(result["long"])]
    return "\n".join(lines)
