"""An experiment's results as tables: ``trials.parquet`` (a row per trial) and ``history.parquet`` (per epoch).

Read from Ray Tune's own experiment state, so they can be rebuilt at any time,
also for a sweep that was interrupted; a trial that finished after a killed
driver's last state save is read from the experiment's record of finished
trials (``tuner.experiment.finished``). ``status`` is one of ``COMPLETED`` (ran
every epoch), ``STOPPED`` (stopped early by ASHA), ``DIVERGED`` (its loss
turned NaN/inf; ``error`` says why), ``ERROR`` (failed after its retries;
``error`` holds the exception), or Tune's ``RUNNING``/``PENDING`` for an
unfinished sweep.
"""

from __future__ import annotations

import io
import logging
import math
from typing import Any

import numpy as np
import pandas as pd

from trainer_core.errors import ConfigError, did_you_mean
from tuner.experiment.files import ExperimentError, join, write_bytes
from tuner.experiment.finished import read_record, reconcile
from tuner.experiment.meta import HISTORY_FILE, TRIALS_FILE, ExperimentMeta
from tuner.experiment.objectives import Constraint, Objective, pareto_mask

HEADLINE = ("GeoDeg", "FreeRun/GeoDeg", "RootVelMAE", "FreeRun/RootVelMAE", "YawAbsDeg", "FreeRun/YawAbsDeg",
            "FootContact")  # fmt: skip
PARAM_PREFIX = "config/"
AT_BEST = "best_epoch/"  # a metric's value at the trial's best epoch by the first objective (its best model)
HISTORY_COLUMNS = (
    "trial_id", "epoch", "training_iteration", "trial_start", "report_time", "time_total_s", "time_this_iter_s",
    "node", "stage", "tf_ratio", "freerun_weight", "freerun_horizon", "diverged",
)  # fmt: skip


def quiet_missing_results() -> None:
    """Trials that never started (a sweep ended by its budget) have no results; Ray warns about each one."""
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)


def _analysis(meta: ExperimentMeta):  # noqa: ANN202
    from ray.tune import ExperimentAnalysis

    from tuner.experiment.files import filesystem, is_uri

    fs = filesystem(meta.path)[0] if is_uri(meta.path) else None
    try:
        quiet_missing_results()
        return ExperimentAnalysis(meta.path, storage_filesystem=fs)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        raise ExperimentError(f"{meta.path}: holds no Ray Tune experiment state ({str(e).splitlines()[0]})") from None


def _error_text(trial: Any) -> str:
    if trial.status != "ERROR":
        return ""
    try:
        msg = str(trial.get_error() or "")
    except Exception:  # noqa: BLE001 - the error file may be gone; say where to look instead
        msg = ""
    msg = msg or "trial failed (see its error.txt)"
    lines = [ln for ln in str(msg).strip().splitlines() if ln.strip()]
    return lines[-1][:500] if lines else ""


def _status(status: str, last: dict[str, Any], epochs: int, max_epochs: int) -> str:
    if status == "ERROR":
        return "ERROR"
    if last.get("diverged") == 1:
        return "DIVERGED"
    if status == "TERMINATED":
        return "COMPLETED" if epochs >= max_epochs else "STOPPED"
    return status


def _order(trial: Any) -> int:
    """Creation order: Tune's experiment tag starts with the trial's counter (``3_lr=...``)."""
    head = str(getattr(trial, "experiment_tag", "")).split("_", 1)[0]
    return int(head) if head.isdigit() else 0


def collect_results(meta: ExperimentMeta) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(trials, history)`` of an experiment, trials in the order they were created."""
    analysis = _analysis(meta)
    frames = analysis.trial_dataframes
    metric, better_min = meta.metric, meta.mode == "min"
    max_epochs = meta.epochs
    record = read_record(meta.path)  # trials that finished after the last state save of a killed driver, too
    rows, histories = [], []
    for trial in sorted(analysis.trials, key=_order):
        df, last, status = reconcile(trial, frames.get(trial.trial_id, pd.DataFrame()), record.get(trial.trial_id))
        df = each_epoch_once(df)
        good = df[df.get("diverged", 0) != 1] if len(df) else df
        epochs = int(good["epoch"].max()) if len(good) and "epoch" in good else 0
        values = good[metric].dropna() if len(good) and metric in good else pd.Series(dtype=float)
        best_i = (values.idxmin() if better_min else values.idxmax()) if len(values) else None
        row: dict[str, Any] = {
            "trial_id": trial.trial_id,
            "order": _order(trial),
            "status": _status(status, last, epochs, max_epochs),
            "error": str(last.get("diverged_reason", "")) or _error_text(trial),
            "node": last.get("node", ""),
            "node_ip": last.get("node_ip", ""),
            "device": last.get("device", ""),
            "epochs": epochs,
            f"final/{metric}": float(values.iloc[-1]) if len(values) else math.nan,
            f"best/{metric}": float(values.loc[best_i]) if best_i is not None else math.nan,
            "best_epoch": int(good.loc[best_i, "epoch"]) if best_i is not None else 0,
            "wall_s": float(last.get("time_total_s", math.nan)),
            "start_time": float(df["trial_start"].iloc[0]) if "trial_start" in df else math.nan,
            "end_time": float(df["report_time"].iloc[-1]) if "report_time" in df else math.nan,
            "warm_start": bool(meta.warm_start) and _same_params(trial.config, meta.warm_start),
            "path": trial.path,
        }
        for key in dict.fromkeys([*HEADLINE, *_scored(meta)]):
            if key != metric:
                row[f"final/{key}"] = float(good[key].iloc[-1]) if len(good) and key in good else math.nan
        for key in _scored(meta):
            if key != metric:
                known = best_i is not None and key in good
                row[f"{AT_BEST}{key}"] = float(good.loc[best_i, key]) if known else math.nan
        for k, v in sorted(trial.config.items()):
            row[PARAM_PREFIX + k] = v
        rows.append(row)
        if len(df):
            keep = [c for c in df.columns if c in HISTORY_COLUMNS or "/" in c or c in ("GeoDeg", "RootVelMAE")]
            h = df[[c for c in keep if c != "trial_id"]].copy()
            h.insert(0, "trial_id", trial.trial_id)
            histories.append(h)
    trials = pd.DataFrame(rows)
    if len(trials) and (meta.multi_objective or meta.constraints):
        trials = with_front(trials, meta.objectives, meta.constraint_list())
    history = pd.concat(histories, ignore_index=True) if histories else pd.DataFrame(columns=["trial_id", "epoch"])
    return trials, history


def _scored(meta: ExperimentMeta) -> list[str]:
    """The metrics besides the first objective that a trial is scored on: the other objectives, the constrained."""
    return [*(o.metric for o in meta.objectives[1:]), *(c.metric for c in meta.constraint_list())]


def point_column(metric: str, first: str) -> str:
    """The ``trials.parquet`` column of a trial's best model's ``metric``: ``best/<first>`` for the first objective,
    else ``best_epoch/<metric>``, its value at that epoch."""
    return f"best/{first}" if metric == first else f"{AT_BEST}{metric}"


def with_front(trials: pd.DataFrame, objectives: list[Objective], constraints: list[Constraint]) -> pd.DataFrame:
    """``trials`` with ``feasible`` (finished, and every constraint holds for its best model) and, with several
    objectives, ``pareto``: on the front of the feasible trials (``tuner.experiment.objectives``). A trial is scored
    by its best model, the one ``best_model.pt`` holds and export points to: its best epoch by the first objective,
    with every other objective's value at that epoch (the long validation's as of that epoch)."""
    out = trials.copy()
    first = objectives[0].metric
    finished = out["status"].isin(["COMPLETED", "STOPPED"]).to_numpy()
    feasible = finished.copy()
    for c in constraints:
        feasible &= np.array([c.violation(v) <= 0 for v in out[point_column(c.metric, first)]], dtype=bool)
    out["feasible"] = feasible
    if len(objectives) > 1:
        points = out[[point_column(o.metric, first) for o in objectives]].to_numpy(dtype=float)
        out["pareto"] = pareto_mask(points, [o.mode for o in objectives], feasible)
    return out


def each_epoch_once(df: pd.DataFrame) -> pd.DataFrame:
    """A trial's result rows with each epoch once, the latest row kept.

    A trial continued from a checkpoint older than its last result reports those epochs again: its driver
    restarted after Ray's memory monitor killed trial workers (``tuner.search.stop``) or was killed, with the
    experiment's state saved before the results that followed it. The rows reported again come later: the
    ones of the run the trial went on with.
    """
    if not len(df) or "epoch" not in df:
        return df
    again = df["epoch"].notna() & df.duplicated("epoch", keep="last")
    return df[~again].reset_index(drop=True) if again.any() else df


def _same_params(config: dict[str, Any], params: dict[str, Any]) -> bool:
    return all(
        k in config and (math.isclose(config[k], v, rel_tol=1e-9) if isinstance(v, float) else config[k] == v)
        for k, v in params.items()
    )


def _parquet_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def write_results(meta: ExperimentMeta, trials: pd.DataFrame, history: pd.DataFrame) -> None:
    """Both tables into the experiment directory, each written atomically."""
    write_bytes(join(meta.path, TRIALS_FILE), _parquet_bytes(trials))
    write_bytes(join(meta.path, HISTORY_FILE), _parquet_bytes(history))


def finished_trials(trials: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Trials with a usable objective value: completed or stopped early, not diverged or failed."""
    col = f"best/{metric}"
    if col not in trials:
        return trials.iloc[0:0]
    ok = trials["status"].isin(["COMPLETED", "STOPPED"]) & trials[col].notna()
    return trials[ok]


def no_finished_reason(trials: pd.DataFrame, metric: str, what: str = "trial") -> str | None:
    """None when a trial finished (``finished_trials``); else one line saying none did: how the trials ended and
    the first failed one's error (``what``: how to call a trial, e.g. "verification trial")."""
    if len(finished_trials(trials, metric)):
        return None
    return f"no {what} finished {how_trials_ended(trials, what)}"


def how_trials_ended(trials: pd.DataFrame, what: str = "trial") -> str:
    """``(N in all: 2 error, 1 running); the first, trial ID, errored: <its error>``, for one-line messages."""
    if not len(trials):
        return "(none ran)"
    counts = trials["status"].value_counts().to_dict()
    how = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
    failed = trials[trials["status"].isin(["ERROR", "DIVERGED"])]
    first = ""
    if len(failed):
        row = failed.sort_values("order").iloc[0] if "order" in failed else failed.iloc[0]
        word = "diverged" if row["status"] == "DIVERGED" else "errored"
        error = " ".join(str(row.get("error", "") or "").split()) or "see its error.txt"
        first = f"; the first, {what} {row['trial_id']}, {word}: {error}"
    return f"({len(trials)} in all: {how}){first}"


def rank_trials(trials: pd.DataFrame, history: pd.DataFrame, metric: str, mode: str) -> pd.DataFrame:
    """Trials that finished (completed or stopped early) with their best ``metric``, best first."""
    if trials.empty or not trials["status"].isin(["COMPLETED", "STOPPED"]).any():  # before the metric: none to rank
        raise ExperimentError(f"no finished trial to export {how_trials_ended(trials)}")
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


def trial_params(row: pd.Series) -> dict[str, Any]:
    """The sampled params of a ``trials.parquet`` row (its ``config/...`` columns that are set)."""
    out = {}
    for col, v in row.items():
        if str(col).startswith(PARAM_PREFIX) and not (isinstance(v, float) and math.isnan(v)):
            out[str(col)[len(PARAM_PREFIX) :]] = v.item() if hasattr(v, "item") else v
    return out
