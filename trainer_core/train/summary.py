"""A run's ``summary.json``: final and best metrics beside the baselines', what was held out, the test split.

The test split is scored once, after the last epoch, on ``best_model.pt``: it
takes no part in choosing the epoch, so it is the number to report.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from trainer_core.data.device_data import build_split
from trainer_core.data.groups import by_group, motion_groups
from trainer_core.errors import DataError
from trainer_core.io_utils import atomic_write_json, json_safe
from trainer_core.model.model import MotionModel
from trainer_core.train import checkpoint as ckpt
from trainer_core.train.build import build_model
from trainer_core.train.metrics import baselines, evaluate
from trainer_core.train.setup import Setup

SUMMARY_FILE = "summary.json"


def test_metrics(s: Setup, out: Path) -> dict[str, Any]:
    """The best model's metrics on the test split, beside the baselines': evaluated once, after training.

    The test split takes no part in choosing the best epoch (or, in a sweep, the best trial),
    so this is the number to report.
    """
    assert s.test is not None
    model, epoch = best_model(s, out)
    horizon = s.cfg.freerun.eval_freerun_horizon
    return {
        "epoch": epoch,
        "clips": s.test.names,
        "model": evaluate(model, s.rt, s.kin, s.test, horizon),
        "baselines": baselines(s.test, s.kin, horizon),
    }


def best_model(s: Setup, out: Path) -> tuple[MotionModel, int]:
    """The run's ``best_model.pt`` as a model on the run's device, and its epoch."""
    state = ckpt.load(out / ckpt.BEST_NAME)
    model = build_model(s.model.arch, s.norm, s.device)
    model.load_state_dict(state["model_state_dict"])
    return model, int(state["epoch"])


def group_metrics(s: Setup, model: MotionModel, names: list[str]) -> dict[str, Any]:
    """Per motion group (``motion_groups``) of the clips ``names``: the clips, ``model``'s metrics and
    copy-last-frame's on them alone. A group with no clip long enough for a counted step holds ``skipped``.

    A model that walks well and cannot stand still shows here, where all clips pooled hide it."""
    clips = {c.name: c for c in s.dataset.clips}
    groups = by_group(motion_groups([clips[n] for n in names], s.cfg.data.motion_groups), names)
    horizon = s.cfg.freerun.eval_freerun_horizon
    out: dict[str, Any] = {}
    for group, members in groups.items():
        try:
            split = build_split([clips[n] for n in members], s.dataset.skeleton, s.norm, s.cfg.optim.seq_len,
                                s.cfg.data.cond_window_s, s.device)  # fmt: skip
        except DataError as e:
            out[group] = {"clips": members, "skipped": str(e)}
            continue
        base = baselines(split, s.kin, horizon)["copy-last-frame"]
        out[group] = {"clips": members, "model": evaluate(model, s.rt, s.kin, split, horizon),
                      "baselines": {"copy-last-frame": base}}  # fmt: skip
    return out


def format_groups(groups: dict[str, Any], split_name: str) -> list[str]:
    """One line per group: the model's teacher and free-run ``GeoDeg`` beside copy-last-frame's."""
    lines = []
    for g, e in groups.items():
        if "skipped" in e:
            lines.append(f"{split_name} {g} ({len(e['clips'])} clips): skipped, {e['skipped']}")
            continue
        m, b = e["model"], e["baselines"]["copy-last-frame"]
        lines.append(
            f"{split_name} {g} ({len(e['clips'])} clips, best model): GeoDeg {m['GeoDeg']:.3f} "
            f"FreeRun/GeoDeg {m['FreeRun/GeoDeg']:.3f} | copy-last {b['GeoDeg']:.3f} / {b['FreeRun/GeoDeg']:.3f}"
        )
    return lines


def _beats(final: dict[str, Any], base: dict[str, float], keys: tuple[str, ...]) -> dict[str, bool]:
    return {k: bool(math.isfinite(final.get(k, math.nan)) and final[k] < base[k]) for k in keys if k in final}


def write_summary(
    out: Path,
    s: Setup,
    final: dict[str, Any],
    base: dict[str, float],
    history: list[dict[str, Any]],
    best: float | None,
    best_epoch: int | None,
    status: str,
    wall_s: float,
) -> dict[str, Any]:
    best_metrics = next((h for h in history if h.get("epoch") == best_epoch), None)
    compare = ("GeoDeg", "FreeRun/GeoDeg", "RootVelMAE", "FreeRun/RootVelMAE", "YawAbsDeg", "FreeRun/YawAbsDeg")
    summary = {
        "status": status,
        "epochs": s.cfg.optim.epochs,
        "last_epoch": final.get("epoch"),
        "device": str(s.device),
        "wall_s": round(wall_s, 2),
        "objective": s.cfg.run.objective,
        "objective_mode": s.cfg.run.objective_mode,
        "best": {"epoch": best_epoch, "value": best, "metrics": best_metrics},
        "final": {k: v for k, v in final.items() if isinstance(v, (int, float, str))},
        "baseline": {"name": "copy-last-frame", **base},
        "baselines": s.val_baselines,
        "beats_baseline": _beats(final, base, compare),
        "beats_control_baseline": _beats(final, s.val_baselines["copy-last-pose+control"], compare),
        "data": {
            "folder": str(s.dataset.folder),
            "fingerprint": s.dataset.fingerprint,
            "train_clips": s.train.names,
            "val_clips": s.val.names,
            "test_clips": s.test.names if s.test is not None else [],
            "held_out": s.held_out,
        },
    }
    summary = json_safe(summary)
    atomic_write_json(out / SUMMARY_FILE, summary)
    return summary


def summary_test_metrics(summary: dict[str, Any], prefix: str) -> dict[str, float]:
    """The test-split metrics of a run's summary, as ``<prefix><metric>`` (empty when the config has no test split).

    Flat keys that already carry ``prefix`` are taken as they are; ``summary["test"]["model"]`` (the best
    model's ``test_metrics``) gives the rest. The tuner reports them with a trial's last epoch.
    """
    out: dict[str, float] = {}
    for k, v in summary.items():
        if k.startswith(prefix) and isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = float(v)
    test = summary.get("test")
    if isinstance(test, dict):
        model = test.get("model") if isinstance(test.get("model"), dict) else test
        for k, v in model.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "epoch":
                out[prefix + k] = float(v)
    return out
