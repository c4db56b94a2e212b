"""A run's ``summary.json``: final and best metrics beside the baselines', what was held out, the test split.

The test split is scored once, after the last epoch, on ``best_model.pt``: it
takes no part in choosing the epoch, so it is the number to report.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from trainer_core.io_utils import atomic_write_json, json_safe
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
    state = ckpt.load(out / ckpt.BEST_NAME)
    model = build_model(s.model.arch, s.norm, s.device)
    model.load_state_dict(state["model_state_dict"])
    horizon = s.cfg.freerun.eval_freerun_horizon
    return {
        "epoch": state["epoch"],
        "clips": s.test.names,
        "model": evaluate(model, s.rt, s.kin, s.test, horizon),
        "baselines": baselines(s.test, s.kin, horizon),
    }


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
