"""Export the best trial(s) of an experiment as trainer configs, each with a provenance sidecar.

The config is the seed's flat format, keys in a stable order, exactly what
``motiontune train --config`` runs. ``<out>.provenance.json`` says where it came
from: experiment, trial, metric and value, epochs, data fingerprint, space,
package version, and the trial's best checkpoint.
"""

from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.fs as pafs

from search_spaces.mapping import params_to_config
from search_spaces.spec import space_from_dict
from trainer_core import __version__
from trainer_core.errors import ConfigError, did_you_mean
from trainer_core.io_utils import atomic_write_json
from tuner.experiment import ExperimentError, ExperimentMeta, filesystem, join
from tuner.results import PARAM_PREFIX, collect_results


def provenance_path(config_path: Path) -> Path:
    """``best.json`` -> ``best.provenance.json``."""
    return config_path.with_name(f"{config_path.stem}.provenance.json")


def rank_trials(trials: pd.DataFrame, history: pd.DataFrame, metric: str, mode: str) -> pd.DataFrame:
    """Trials that finished (completed or stopped early) with their best ``metric``, best first."""
    if metric not in history.columns:
        known = [c for c in history.columns if "/" in c or c[:1].isupper()]
        raise ConfigError(f"--metric {metric!r}: not in this experiment's results{did_you_mean(metric, known)}")
    ok = trials[trials["status"].isin(["COMPLETED", "STOPPED"])]
    h = history[history["trial_id"].isin(ok["trial_id"]) & history[metric].notna()]
    if "diverged" in h:
        h = h[h["diverged"] != 1]
    if h.empty:
        raise ExperimentError("no finished trial to export: every trial is still running, diverged or failed")
    pick = h.groupby("trial_id")[metric].idxmin() if mode == "min" else h.groupby("trial_id")[metric].idxmax()
    best = h.loc[pick.values, ["trial_id", metric, "epoch"]].rename(columns={metric: "value", "epoch": "best_epoch_m"})
    ranked = ok.merge(best, on="trial_id").sort_values("value", ascending=(mode == "min"), kind="stable")
    return ranked.reset_index(drop=True)


def _params(row: pd.Series) -> dict[str, Any]:
    out = {}
    for col, v in row.items():
        if str(col).startswith(PARAM_PREFIX) and not (isinstance(v, float) and math.isnan(v)):
            out[str(col)[len(PARAM_PREFIX) :]] = v.item() if hasattr(v, "item") else v
    return out


def _best_checkpoint(trial_path: str, epoch: int) -> str | None:
    """Tune's checkpoint of that epoch if it was kept, else the trainer's own best_model.pt."""
    fs, _ = filesystem(trial_path)
    for candidate in (join(trial_path, f"checkpoint_{epoch - 1:06d}"), join(trial_path, "run", "best_model.pt")):
        local = filesystem(candidate)[1]
        if fs.get_file_info(local).type != pafs.FileType.NotFound:
            return candidate
    return None


def _out_paths(out: Path, top: int) -> list[Path]:
    if top == 1:
        return [out]
    return [out.with_name(f"{out.stem}.top{k}{out.suffix or '.json'}") for k in range(1, top + 1)]


def export(experiment_dir: str, out: str | None = None, top: int = 1, metric: str | None = None,
           mode: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Write the ``top`` best configs; returns their provenance records."""
    if top < 1:
        raise ConfigError(f"--top is {top}, but must be >= 1")
    if mode is not None and mode not in ("min", "max"):
        raise ConfigError(f"--mode is {mode!r}, but must be min or max")
    meta = ExperimentMeta.load(experiment_dir)
    metric = metric or meta.metric
    mode = mode or (meta.mode if metric == meta.metric else "min")
    trials, history = collect_results(meta)
    ranked = rank_trials(trials, history, metric, mode)
    space = space_from_dict(meta.space, f"{meta.path}: space")
    base = meta.base()
    out_path = Path(out) if out else Path(join(meta.path, "best_config.json"))
    records = []
    for rank, (path, (_, row)) in enumerate(zip(_out_paths(out_path, top), ranked.head(top).iterrows()), start=1):
        params = _params(row)
        cfg = params_to_config(space, params, base)
        record = {
            "experiment": meta.path,
            "trial_id": row["trial_id"],
            "rank": rank,
            "metric": metric,
            "mode": mode,
            "value": float(row["value"]),
            "best_epoch": int(row["best_epoch_m"]),
            "epochs_run": int(row["epochs"]),
            "status": row["status"],
            "node": row.get("node", ""),
            "data_fingerprint": meta.data_fingerprint,
            "space": meta.space_name,
            "package_version": __version__,
            "best_checkpoint": _best_checkpoint(str(row["path"]), int(row["best_epoch_m"])),
            "params": params,
            "exported_at": _dt.datetime.now().isoformat(timespec="seconds"),
            "config": str(path),
        }
        atomic_write_json(path, cfg.to_dict())
        atomic_write_json(provenance_path(path), record)
        records.append(record)
    if len(records) < top:
        records[-1]["note"] = f"only {len(records)} finished trial(s) to export"
    return records
