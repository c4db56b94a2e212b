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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.fs as pafs

from search_spaces.mapping import params_to_config
from search_spaces.spec import space_from_dict
from trainer_core import __version__
from trainer_core.errors import ConfigError, raise_all
from trainer_core.io_utils import atomic_write_json
from tuner.experiment.files import ExperimentError, filesystem, join
from tuner.experiment.meta import ExperimentMeta
from tuner.experiment.objectives import Objective
from tuner.experiment.results import AT_BEST, collect_results, rank_trials, trial_params
from tuner.report.preference import Within, choose, prefer_objective
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


def _out_paths(out: Path, top: int, kind: str = "top") -> list[Path]:
    if top == 1 and kind == "top":
        return [out]
    return [out.with_name(f"{out.stem}.{kind}{k}{out.suffix or '.json'}") for k in range(1, top + 1)]


@dataclass
class Choice:
    """How export picks among a multi-objective sweep's configs: the top by the first objective (default),
    ``--prefer`` within ``--within`` (``tuner.report.preference``), or every point of the front (``--front``)."""

    objectives: list[Objective]
    prefer: Objective | None = None
    within: list[Within] = field(default_factory=list)
    front: bool = False

    @classmethod
    def from_options(cls, meta: ExperimentMeta, prefer: str | None, within: list[str] | None, front: bool,
                     top: int, metric: str | None) -> Choice:  # fmt: skip
        problems = []
        if (prefer or within or front) and metric is not None:
            problems.append("--metric ranks by one metric; --prefer, --within and --front choose among the sweep's "
                            "objectives: give one or the other")  # fmt: skip
        if (prefer or front) and top != 1:
            problems.append("--top exports the K best by the first objective; --prefer and --front choose otherwise: "
                            "drop --top")  # fmt: skip
        if prefer and front:
            problems.append("--prefer picks one config, --front exports all of the front: give one of them")
        if within and not prefer:
            problems.append("--within bounds the configs --prefer chooses among: give --prefer METRIC too")
        if front and not meta.multi_objective:
            problems.append(f"--front: {meta.path} has one objective ({meta.metric}), so no front; sweep with --metric "
                            "repeated")  # fmt: skip
        raise_all(problems, ConfigError)
        objectives = meta.objectives
        return cls(objectives, prefer_objective(prefer, objectives) if prefer else None,
                   [Within.parse(w, objectives) for w in within or []], front)  # fmt: skip


def _front_record(rows: pd.DataFrame, label: str, values: dict[str, str]) -> list[dict[str, Any]]:
    """The front as the provenance records it: each point's id and its value of every objective."""
    return [{"id": str(r[label]), **{m: float(r[c]) for m, c in values.items()}} for _, r in rows.iterrows()]


def export(experiment_dir: str, out: str | None = None, top: int = 1, metric: str | None = None,
           mode: str | None = None, prefer: str | None = None, within: list[str] | None = None,
           front: bool = False) -> list[dict[str, Any]]:  # fmt: skip
    """Write the ``top`` best configs (or the one ``--prefer`` picks, or the front's); returns their provenance.

    With a verification (``verification.parquet``) the configs are the verified ranking's, best mean over
    the fresh seeds first; without one, the search's single-seed ranking, and each record says it is unverified.
    A trial (or verified config) that breaks a constraint of the sweep is never exported.
    """
    if top < 1:
        raise ConfigError(f"--top is {top}, but must be >= 1")
    if mode is not None and mode not in ("min", "max"):
        raise ConfigError(f"--mode is {mode!r}, but must be min or max")
    meta = ExperimentMeta.load(experiment_dir)
    choice = Choice.from_options(meta, prefer, within, front, top, metric)
    metric = metric or meta.metric
    mode = mode or (meta.mode if metric == meta.metric else "min")
    trials, history = collect_results(meta)
    ranked = _feasible(rank_trials(trials, history, metric, mode), "finished trial")
    out_path = Path(out) if out else Path(join(meta.path, "best_config.json"))
    table = load_verification(meta)
    if table is not None and (metric, mode) == (meta.metric, meta.mode):
        return _export_verified(meta, table, trials, out_path, top, choice)
    unverified = _unverified_reason(meta, table is not None, metric)
    values = {o.metric: "value" if o.metric == metric else AT_BEST + o.metric for o in meta.objectives}
    rows, kind, extra = _chosen(ranked, choice, values, "trial_id", _base_values(ranked, values), top)
    space = space_from_dict(meta.space, f"{meta.path}: space")
    base = meta.given_base()
    records = []
    for rank, (path, (_, row)) in enumerate(zip(_out_paths(out_path, len(rows), kind), rows.iterrows()), start=1):
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
            **_objective_values(meta, row, values),
            **extra,
        }
        _write(path, params_to_config(space, params, base, meta.epochs).to_dict(), record)
        records.append(record)
    if len(records) < top:
        records[-1]["note"] = f"only {len(records)} finished trial(s) to export"
    return records


def _feasible(rows: pd.DataFrame, what: str) -> pd.DataFrame:
    """``rows`` without the ones that break a constraint (those with ``feasible`` False); none left is an error."""
    if "feasible" not in rows:
        return rows
    ok = rows[rows["feasible"].astype(bool)]
    if ok.empty:
        raise ExperimentError(f"no {what} meets the sweep's constraints, so there is nothing to export")
    return ok


def _base_values(rows: pd.DataFrame, values: dict[str, str]) -> dict[str, float]:
    """The base config's value of each objective: its warm-start trial's (NaN without one)."""
    warm = rows[rows["warm_start"].astype(bool)] if "warm_start" in rows else rows.iloc[0:0]
    if warm.empty:
        return {}
    return {m: float(warm.iloc[0][c]) for m, c in values.items() if c in warm}


def _objective_values(meta: ExperimentMeta, row: pd.Series, values: dict[str, str]) -> dict[str, Any]:
    """A multi-objective export's value of every objective (verified: the mean over the seeds and the paired
    improvement's 95% interval over the base, positive = better)."""
    if not meta.multi_objective:
        return {}
    out = {}
    for o in meta.objectives:
        col = values[o.metric]
        if col not in row:
            continue
        entry: dict[str, Any] = {"mode": o.mode, "value": float(row[col])}
        prefix = "best_improvement" if col == "best_mean" else col[: -len("/mean")] + "/improvement"
        if f"{prefix}_lo" in row:
            entry["improvement_ci95"] = [float(row[f"{prefix}_lo"]), float(row[f"{prefix}_hi"])]
        out[o.metric] = entry
    return {"objectives": out}


def _chosen(rows: pd.DataFrame, choice: Choice, values: dict[str, str], label: str, base: dict[str, float],
            top: int) -> tuple[pd.DataFrame, str, dict[str, Any]]:  # fmt: skip
    """The rows to export (best first), the out-path kind ("top" or "front") and what the provenance adds: the
    front (each point's objectives) and the rule that chose."""
    front = rows[rows["pareto"].astype(bool)] if "pareto" in rows else rows.iloc[0:0]
    extra: dict[str, Any] = {}
    if "pareto" in rows:
        extra["front"] = _front_record(front, label, values)
    if choice.front:
        if front.empty:
            raise ExperimentError("--front: no point of the front to export (no feasible finished config)")
        extra["rule"] = "every point of the front, sorted by the first objective"
        return front, "front", extra
    if choice.prefer is not None:
        i, extra["rule"] = choose(rows, values, base, choice.prefer, choice.within, choice.objectives)
        return rows.loc[[i]], "top", extra
    if "pareto" in rows:
        extra["rule"] = "best by the first objective (the default; --prefer or --front choose along the front)"
    return rows.head(top), "top", extra


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
                     top: int, choice: Choice) -> list[dict[str, Any]]:  # fmt: skip
    space = space_from_dict(meta.space, f"{meta.path}: space")
    base_cfg = meta.base()
    base_row = table[table["is_base"]].iloc[0]
    values = {o.metric: "best_mean" if o.metric == meta.metric else f"{AT_BEST}{o.metric}/mean"
              for o in meta.objectives}  # fmt: skip
    base_values = {m: float(base_row[c]) for m, c in values.items() if c in base_row}
    rows, kind, extra = _chosen(_feasible(table, "verified config"), choice, values, "label", base_values, top)
    records = []
    by_trial = trials.set_index("trial_id") if len(trials) else trials
    for path, (_, row) in zip(_out_paths(out_path, len(rows), kind), rows.iterrows()):
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
            **_objective_values(meta, row, values),
            **extra,
        }
        _write(path, cfg.to_dict(), record)
        records.append(record)
    if len(records) < top:
        records[-1]["note"] = f"only {len(records)} verified config(s) to export"
    return records
