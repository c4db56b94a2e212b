"""Export the best trial(s) of an experiment as trainer configs, each with a provenance sidecar.

The config is the seed's flat format, keys in a stable order, exactly what
``motiontune train --config`` runs. ``<out>.provenance.json`` says where it came
from: experiment, trial, metric and value, epochs, data fingerprint, space,
package version, and the trial's best checkpoint.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.fs as pafs

from search_spaces.mapping import params_to_config
from search_spaces.spec import space_from_dict
from trainer_core import __version__
from trainer_core.errors import ConfigError
from trainer_core.io_utils import atomic_write_json
from tuner.experiment.files import filesystem, join
from tuner.experiment.meta import ExperimentMeta
from tuner.experiment.results import collect_results, rank_trials, trial_params
from tuner.verify.plan import RESULT_FILE, VerifyPlan, load_verification


def provenance_path(config_path: Path) -> Path:
    """``best.json`` -> ``best.provenance.json``."""
    return config_path.with_name(f"{config_path.stem}.provenance.json")


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
    """Write the ``top`` best configs; returns their provenance records.

    With a verification (``verification.parquet``) the configs are the verified ranking's, best mean over
    the fresh seeds first; without one, the search's single-seed ranking, and each record says it is unverified.
    """
    if top < 1:
        raise ConfigError(f"--top is {top}, but must be >= 1")
    if mode is not None and mode not in ("min", "max"):
        raise ConfigError(f"--mode is {mode!r}, but must be min or max")
    meta = ExperimentMeta.load(experiment_dir)
    metric = metric or meta.metric
    mode = mode or (meta.mode if metric == meta.metric else "min")
    trials, history = collect_results(meta)
    ranked = rank_trials(trials, history, metric, mode)
    out_path = Path(out) if out else Path(join(meta.path, "best_config.json"))
    table = load_verification(meta)
    if table is not None and (metric, mode) == (meta.metric, meta.mode):
        return _export_verified(meta, table, trials, out_path, top)
    unverified = _unverified_reason(meta, table is not None, metric)
    space = space_from_dict(meta.space, f"{meta.path}: space")
    base = meta.given_base()
    records = []
    for rank, (path, (_, row)) in enumerate(zip(_out_paths(out_path, top), ranked.head(top).iterrows()), start=1):
        params = trial_params(row)
        record = {
            **_common(meta, path, params),
            "trial_id": row["trial_id"],
            "rank": rank,
            "metric": metric,
            "mode": mode,
            "value": float(row["value"]),
            "best_epoch": int(row["best_epoch_m"]),
            "epochs_run": int(row["epochs"]),
            "status": row["status"],
            "node": row.get("node", ""),
            "best_checkpoint": _best_checkpoint(str(row["path"]), int(row["best_epoch_m"])),
            "verified": False,
            "unverified": unverified,
        }
        _write(path, params_to_config(space, params, base, meta.epochs).to_dict(), record)
        records.append(record)
    if len(records) < top:
        records[-1]["note"] = f"only {len(records)} finished trial(s) to export"
    return records


def _unverified_reason(meta: ExperimentMeta, has_verification: bool, metric: str) -> str:
    if has_verification:
        return f"ranked by {metric}, which the verification did not rank by (it ranked {meta.metric})"
    if VerifyPlan.load(meta) is not None:
        return f"the verification is unfinished; `motiontune resume {meta.path}` finishes it"
    return (f"the pick is the best single-seed search value, not re-trained on fresh seeds; "
            f"`motiontune verify {meta.path}` checks it")  # fmt: skip


def _common(meta: ExperimentMeta, path: Path, params: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "experiment": meta.path,
        "data_fingerprint": meta.data_fingerprint,
        "space": meta.space_name,
        "package_version": __version__,
        "params": params,
        "exported_at": _dt.datetime.now().isoformat(timespec="seconds"),
        "config": str(path),
    }


def _write(path: Path, config: dict[str, Any], record: dict[str, Any]) -> None:
    atomic_write_json(path, config)
    atomic_write_json(provenance_path(path), record)


def _floats(v: Any) -> list[float]:
    return [float(x) for x in v]


def verification_record(row: pd.Series, base: pd.Series, meta: ExperimentMeta) -> dict[str, Any]:
    """The provenance of a verified config: per-seed values, mean ± sd, and the paired improvement over the base."""
    values = _floats(row["best_values"])
    finite = [(v, c) for v, c in zip(values, row["checkpoints"]) if math.isfinite(v)]
    best_ckpt = (min(finite) if row["mode"] == "min" else max(finite))[1] if finite else None
    lo, hi = float(row["best_improvement_lo"]), float(row["best_improvement_hi"])
    extras = {c[: -len("/mean")]: float(row[c]) for c in row.index if str(c).endswith("/mean")}
    return {
        "seeds": [int(s) for s in row["seeds"]],
        "values": values,
        "mean": float(row["best_mean"]),
        "sd": float(row["best_sd"]),
        "final_values": _floats(row["final_values"]),
        "final_mean": float(row["final_mean"]),
        "final_sd": float(row["final_sd"]),
        "base": {"values": _floats(base["best_values"]), "mean": float(base["best_mean"]),
                 "sd": float(base["best_sd"])},  # fmt: skip
        "improvement": {
            "direction": "base - config (lower is better)" if row["mode"] == "min" else "config - base",
            "per_seed": _floats(row["best_improvement"]),
            "mean": float(row["best_improvement_mean"]),
            "ci95": [lo, hi],
            "interval": "95% Student t over the paired seeds",
            "excludes_zero": bool(row["best_excludes_zero"]),
        },
        "beats_base": bool(not row["is_base"] and row["best_improvement_mean"] > 0),
        "winner_is_base": bool(row["is_base"]) if int(row["rank"]) == 1 else None,
        "checkpoints": [str(c) for c in row["checkpoints"]],
        "best_checkpoint": best_ckpt,
        "other_metrics": extras,
        "file": join(meta.path, RESULT_FILE),
    }


def _export_verified(meta: ExperimentMeta, table: pd.DataFrame, trials: pd.DataFrame, out_path: Path,
                     top: int) -> list[dict[str, Any]]:  # fmt: skip
    space = space_from_dict(meta.space, f"{meta.path}: space")
    base_cfg = meta.base()
    base_row = table[table["is_base"]].iloc[0]
    records = []
    by_trial = trials.set_index("trial_id") if len(trials) else trials
    for path, (_, row) in zip(_out_paths(out_path, top), table.head(top).iterrows()):
        params = json.loads(row["params"]) if row["params"] else None
        cfg = base_cfg if params is None else params_to_config(space, params, meta.given_base(), meta.epochs)
        ver = verification_record(row, base_row, meta)
        record = {
            **_common(meta, path, params),
            "trial_id": row["trial_id"],
            "label": row["label"],
            "is_base": bool(row["is_base"]),
            "rank": int(row["rank"]),
            "metric": meta.metric,
            "mode": meta.mode,
            "value": ver["mean"],
            "search_value": float(row["search_value"]),
            "search_rank": int(row["search_rank"]) if int(row["search_rank"]) > 0 else None,
            "node": str(by_trial.loc[row["trial_id"], "node"]) if row["trial_id"] in by_trial.index else "",
            "best_checkpoint": ver["best_checkpoint"],
            "verified": True,
            "verification": ver,
        }
        _write(path, cfg.to_dict(), record)
        records.append(record)
    if len(records) < top:
        records[-1]["note"] = f"only {len(records)} verified config(s) to export"
    return records
