"""``motiontune report``: what a sweep did, as PNG plots, an ``index.html`` and a terminal summary.

Plots: the objective of every trial over time with the best-so-far line;
teacher vs free-run ``GeoDeg`` learning curves of the top trials (the guide's
diagnostic: a free-run/teacher gap over 2x is flagged); the epochs each trial
ran against ASHA's rungs; parameter importance (Optuna's evaluator on a study
rebuilt from the results); parallel coordinates of the top trials; with a
verification, the re-trained finalists on their fresh seeds (``tuner.report.plots``); with
several objectives, the front and previews of its two ends (``tuner.report.front``).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402

from search_spaces.catalog import FAMILIES  # noqa: E402
from search_spaces.spec import SearchSpace, space_from_dict  # noqa: E402
from trainer_core.io_utils import atomic_write, atomic_write_text  # noqa: E402
from tuner.experiment.files import ExperimentError  # noqa: E402
from tuner.experiment.meta import ExperimentMeta  # noqa: E402
from tuner.experiment.results import PARAM_PREFIX, collect_results, finished_trials  # noqa: E402
from tuner.experiment.usage import storage_line  # noqa: E402
from tuner.report.front import FRONT_FILE, front_lines, front_previews, plot_front  # noqa: E402
from tuner.report.plots import plot_verification  # noqa: E402
from tuner.report.previews import best_trial_preview  # noqa: E402
from tuner.verify.plan import load_verification  # noqa: E402

TOP = 5
GAP_LIMIT = 2.0  # the guide: free-run error more than twice the teacher's is a warning sign
STATUS_COLORS = {"COMPLETED": "tab:green", "STOPPED": "tab:orange", "DIVERGED": "tab:red", "ERROR": "black"}


@dataclass
class Report:
    out: Path
    images: dict[str, str]  # file name -> caption
    summary: str


def _save(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


def plot_objective(trials: pd.DataFrame, metric: str, mode: str, path: Path) -> None:
    col = f"best/{metric}"
    t = trials.copy()
    t0 = np.nanmin(t["start_time"]) if t["start_time"].notna().any() else 0.0
    span = float(np.nanmax(t["end_time"]) - t0) if t["end_time"].notna().any() else 0.0
    unit, scale = ("minutes", 60.0) if span > 120 else ("seconds", 1.0)
    t["x"] = (t["end_time"] - t0) / scale
    t = t.sort_values("x")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for status, group in t.groupby("status"):
        y = group[col].where(group[col].notna(), np.nan)
        ax.scatter(group["x"], y, label=status.lower(), color=STATUS_COLORS.get(status, "gray"), zorder=3)
    ok = t[t[col].notna() & t["status"].isin(["COMPLETED", "STOPPED"])]
    if len(ok):
        best = ok[col].cummin() if mode == "min" else ok[col].cummax()
        ax.step(ok["x"], best, where="post", color="tab:blue", label="best so far")
    for _, row in t[t["status"] == "DIVERGED"].iterrows():
        ax.axvline(row["x"], color="tab:red", alpha=0.3, lw=1)
    ax.set_xlabel(f"{unit} since the sweep started (trial end)")
    ax.set_ylabel(f"trial's best {metric}")
    ax.set_title(f"{metric} per trial ({'lower' if mode == 'min' else 'higher'} is better)")
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_curves(top: pd.DataFrame, history: pd.DataFrame, path: Path) -> list[str]:
    """Teacher and free-run GeoDeg per epoch for the top trials; returns the trials over the gap limit."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    flagged = []
    for i, (_, row) in enumerate(top.iterrows()):
        h = history[history["trial_id"] == row["trial_id"]].sort_values("epoch")
        h = h[h.get("diverged", 0) != 1]
        if h.empty:
            continue
        color = plt.cm.tab10(i % 10)
        gap = float(h["FreeRun/GeoDeg"].iloc[-1] / h["GeoDeg"].iloc[-1]) if h["GeoDeg"].iloc[-1] > 0 else math.nan
        mark = f" gap {gap:.1f}x" + (" > 2x" if gap > GAP_LIMIT else "")
        if gap > GAP_LIMIT:
            flagged.append(f"{row['trial_id']} ({gap:.1f}x)")
        ax.plot(h["epoch"], h["GeoDeg"], "-o", color=color, ms=3, label=f"{row['trial_id']} teacher")
        ax.plot(h["epoch"], h["FreeRun/GeoDeg"], "--s", color=color, ms=3, label=f"{row['trial_id']} free run{mark}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("GeoDeg (degrees)")
    ax.set_title(f"Top {len(top)} trials: teacher (solid) vs free run (dashed)")
    ax.legend(fontsize=7, ncol=2)
    _save(fig, path)
    return flagged


def _rungs(meta: ExperimentMeta) -> list[int]:
    if meta.scheduler != "asha":
        return []
    grace, rf, max_t = meta.grace_period, meta.reduction_factor, meta.epochs
    rungs, r = [], max(1, grace)
    while r < max_t and rf >= 2:
        rungs.append(r)
        r *= rf
    return rungs


def plot_asha(trials: pd.DataFrame, meta: ExperimentMeta, path: Path) -> None:
    t = trials.sort_values("order")
    fig, ax = plt.subplots(figsize=(8, 4))
    colors = [STATUS_COLORS.get(s, "gray") for s in t["status"]]
    ax.bar(range(len(t)), t["epochs"], color=colors)
    for r in _rungs(meta):
        ax.axhline(r, color="gray", ls=":", lw=1)
        ax.text(len(t) - 0.5, r, f" rung {r}", va="bottom", ha="right", fontsize=8, color="gray")
    ax.axhline(meta.epochs, color="tab:green", ls="--", lw=1)
    ax.set_xticks(range(len(t)), [str(o) for o in t["order"]], fontsize=7)
    ax.set_xlabel("trial (creation order)")
    ax.set_ylabel("epochs run")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in STATUS_COLORS.values()]
    ax.legend(handles, [s.lower() for s in STATUS_COLORS], fontsize=8)
    ax.set_title(f"Where each trial stopped ({meta.scheduler.upper()}; dotted: rungs)")
    _save(fig, path)


def _dim_of(space: SearchSpace, name: str):  # noqa: ANN202
    """The space's dimension behind an Optuna param name (``freerun_rise2`` -> ``freerun_rise``)."""
    if name in space.dims:
        return space.dims[name]
    base = name.rstrip("0123456789")
    return space.dims.get(base) if base in FAMILIES else None


def _distribution(space: SearchSpace, name: str, values: pd.Series) -> optuna.distributions.BaseDistribution:
    d = _dim_of(space, name)
    if d is not None and d.choices:
        return optuna.distributions.CategoricalDistribution(list(d.choices))
    if d is not None and d.searched:
        if d.kind == "int":
            return optuna.distributions.IntDistribution(int(d.low), int(d.high), log=d.log)
        return optuna.distributions.FloatDistribution(float(d.low), float(d.high), log=d.log)
    return optuna.distributions.FloatDistribution(float(values.min()), float(values.max()) + 1e-12)


def rebuild_study(finished: pd.DataFrame, space: SearchSpace, metric: str, mode: str) -> optuna.Study:
    """An in-memory Optuna study holding every finished trial with its params and best objective."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize" if mode == "min" else "maximize")
    cols = [c for c in finished.columns if c.startswith(PARAM_PREFIX)]
    dists = {c[len(PARAM_PREFIX) :]: _distribution(space, c[len(PARAM_PREFIX) :], finished[c].dropna()) for c in cols}
    for _, row in finished.iterrows():
        params = {c[len(PARAM_PREFIX) :]: row[c] for c in cols if not pd.isna(row[c])}
        params = {k: (v.item() if hasattr(v, "item") else v) for k, v in params.items()}
        study.add_trial(
            optuna.trial.create_trial(
                params=params, distributions={k: dists[k] for k in params}, value=float(row[f"best/{metric}"])
            )
        )
    return study


def plot_importance(study: optuna.Study, path: Path) -> dict[str, float]:
    fig, ax = plt.subplots(figsize=(7, 4))
    importances: dict[str, float] = {}
    reason = ""
    if len(study.trials) < 2:
        reason = "fewer than 2 finished trials"
    else:
        try:
            importances = optuna.importance.get_param_importances(study)
        except (RuntimeError, ValueError) as e:
            reason = str(e).splitlines()[0]
    if importances:
        names = list(importances)[::-1]
        ax.barh(names, [importances[n] for n in names], color="tab:blue")
        ax.set_xlabel("importance (normalised)")
        ax.set_title("Parameter importance (Optuna, on the finished trials)")
    else:
        ax.text(0.5, 0.5, f"no importance: {reason}", ha="center", va="center")
        ax.set_axis_off()
    _save(fig, path)
    return importances


def plot_parallel(top: pd.DataFrame, space: SearchSpace, metric: str, path: Path) -> None:
    cols = [c for c in top.columns if c.startswith(PARAM_PREFIX) and top[c].notna().any()]
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(cols) + 2), 4.5))
    values = top[f"best/{metric}"]
    norm = plt.Normalize(values.min(), values.max() if values.max() > values.min() else values.min() + 1)
    cmap = plt.cm.viridis_r
    scaled = {}
    for c in cols:
        v = pd.to_numeric(top[c], errors="coerce").astype(float)  # bool choices count as 0/1
        if v.isna().all():  # categorical strings: rank them
            v = top[c].astype("category").cat.codes.astype(float)
        dist = _distribution(space, c[len(PARAM_PREFIX) :], v.dropna())
        lo, hi = getattr(dist, "low", v.min()), getattr(dist, "high", v.max())
        if getattr(dist, "log", False) and lo > 0:
            v, lo, hi = np.log(v), math.log(lo), math.log(hi)
        scaled[c] = (v - lo) / (hi - lo) if hi > lo else v * 0 + 0.5
    for i, (_, row) in enumerate(top.iterrows()):
        ys = [scaled[c].iloc[i] for c in cols]
        ax.plot(range(len(cols)), ys, "-o", color=cmap(norm(row[f"best/{metric}"])), alpha=0.85, ms=3)
    ax.set_xticks(range(len(cols)), [c[len(PARAM_PREFIX) :] for c in cols], rotation=40, ha="right", fontsize=8)
    ax.set_ylabel("position within the space's bounds")
    ax.set_ylim(-0.05, 1.05)
    sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(sm, ax=ax, label=f"best {metric}")
    ax.set_title(f"Top {len(top)} trials across the searched parameters")
    _save(fig, path)


def _summary(meta: ExperimentMeta, trials: pd.DataFrame, ranked: pd.DataFrame, importances: dict[str, float],
             flagged: list[str]) -> str:  # fmt: skip
    metric, col = meta.metric, f"best/{meta.metric}"
    counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(trials["status"].value_counts().items()))
    best = ranked.iloc[0]
    lines = [
        f"experiment {meta.path}",
        f"space `{meta.space_name}`, {meta.searcher} + {meta.scheduler}, objective {metric} ({meta.mode})",
        f"trials: {len(trials)} ({counts}); {int(trials['epochs'].sum())} trial-epochs",
        storage_line(meta.path),
        f"best: trial {best['trial_id']} {metric} {best[col]:.4f} at epoch {best['best_epoch']} of {best['epochs']}",
        "",
        f"top {min(TOP, len(ranked))}:  trial     {metric:>16}  epochs  status",
    ]
    for _, row in ranked.head(TOP).iterrows():
        lines.append(f"        {row['trial_id']:<9} {row[col]:>16.4f}  {row['epochs']:>6}  {row['status'].lower()}")
    if importances:
        top3 = ", ".join(f"{k} {v:.2f}" for k, v in list(importances.items())[:3])
        lines += ["", f"most important parameters: {top3}"]
    if flagged:
        lines += [
            "",
            f"free-run/teacher GeoDeg gap over {GAP_LIMIT:g}x in: {', '.join(flagged)}",
            f"  (FreeRun/GeoDeg averages a {meta.base().freerun.eval_freerun_horizon}-frame rollout, GeoDeg one frame)",
        ]
    diverged = trials[trials["status"] == "DIVERGED"]
    if len(diverged):
        lines += ["", f"diverged: {', '.join(diverged['trial_id'])}"]
    return "\n".join(lines)


def verification_table(table: pd.DataFrame) -> str:
    """The verified ranking (``verification.parquet``) as text: mean ± sd over the fresh seeds, the search-time
    value, the paired gain over the base. The one formatter: the report's summary and the CLI's sweep, resume and
    verify print it alike."""
    seeds = len(table["seeds"].iloc[0]) if len(table) else 0
    lines = [f"verified on {seeds} fresh seeds (best epoch of each run; improvement = paired gain over the base, "
             "95% t interval):"]  # fmt: skip
    for _, r in table.iterrows():
        name = "base config" if r["is_base"] else f"trial {r['label']}"
        search = f"search {r['search_value']:.4f}" if r["search_value"] == r["search_value"] else "search -"
        gain = "" if r["is_base"] else (
            f"  improvement {r['best_improvement_mean']:+.4f} [{r['best_improvement_lo']:+.4f}, "
            f"{r['best_improvement_hi']:+.4f}]" + (" excludes 0" if r["best_excludes_zero"] else "")
        )  # fmt: skip
        short = f"  ({r['n_ok']}/{seeds} seeds finished)" if r["n_ok"] < seeds else ""
        lines.append(f"  {r['rank']}. {name:<18} {r['best_mean']:.4f} ± {r['best_sd']:.4f}  ({search}){gain}{short}")
    return "\n".join(lines)


def _html(meta: ExperimentMeta, summary: str, images: dict[str, str]) -> str:
    figures = "\n".join(
        f'<figure><img src="{html.escape(name)}" alt="{html.escape(caption)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        for name, caption in images.items()
    )
    return (
        "<!doctype html>\n<html><head><meta charset='utf-8'>"
        f"<title>motiontune report: {html.escape(meta.name)}</title>"
        "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}img{max-width:100%}"
        "figure{margin:2em 0}pre{background:#f4f4f4;padding:1em}</style></head><body>"
        f"<h1>Sweep {html.escape(meta.name)}</h1><pre>{html.escape(summary)}</pre>\n{figures}\n</body></html>\n"
    )


def report(experiment_dir: str, out: str | None = None) -> Report:
    meta = ExperimentMeta.load(experiment_dir)
    trials, history = collect_results(meta)
    finished = finished_trials(trials, meta.metric)
    if finished.empty:
        raise ExperimentError(f"{experiment_dir}: no finished trials to report on (none completed or stopped early)")
    out_dir = Path(out) if out else Path(meta.path) / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    space = space_from_dict(meta.space, f"{meta.path}: space")
    ranked = finished.sort_values(f"best/{meta.metric}", ascending=(meta.mode == "min"), kind="stable")
    top = ranked.head(TOP)
    plot_objective(trials, meta.metric, meta.mode, out_dir / "objective.png")
    flagged = plot_curves(top, history, out_dir / "curves.png")
    plot_asha(trials, meta, out_dir / "asha.png")
    importances = plot_importance(rebuild_study(finished, space, meta.metric, meta.mode), out_dir / "importance.png")
    plot_parallel(ranked.head(max(TOP, 10)), space, meta.metric, out_dir / "parallel.png")
    images = {
        "objective.png": f"{meta.metric} of every trial over time, with the best-so-far line",
        "curves.png": "Teacher vs free-run GeoDeg per epoch of the top trials (a gap over 2x is flagged)",
        "asha.png": "Epochs each trial ran, against the ASHA rungs where it could be stopped",
        "importance.png": "Parameter importance, Optuna's evaluator on a study rebuilt from the finished trials",
        "parallel.png": "Parallel coordinates of the top trials, coloured by their objective",
    }
    summary = _summary(meta, trials, ranked, importances, flagged)
    table = load_verification(meta)
    if meta.multi_objective:  # the front's two ends stand for the best trial
        plot_front(meta, trials, table, out_dir / FRONT_FILE)
        images[FRONT_FILE] = (f"{meta.metric} against each other objective: every trial, the front (red), the base "
                              "config (star) and the verified configs (mean ± sd)")  # fmt: skip
        summary += "\n\n" + "\n".join(front_lines(meta, trials, table))
        previews = front_previews(trials, meta, out_dir)
    else:
        preview, caption = best_trial_preview(ranked.iloc[0], out_dir)
        previews = {preview: caption} if preview is not None else {caption: ""}
    for name, caption in previews.items():
        if caption:
            images[name] = caption
        else:
            summary += f"\n\n{name}"
    if table is not None:
        plot_verification(table, out_dir / "verification.png")
        images["verification.png"] = (
            "Verification: per config, its fresh-seed values (dots), their mean and 95% t interval, the value the "
            "search saw (red cross) and the base config's verified mean (dashed)"
        )
        summary += "\n\n" + verification_table(table)
    else:
        summary += "\n\nunverified: the best above is one seed's value (`motiontune verify` re-trains the finalists)"
    atomic_write_text(out_dir / "index.html", _html(meta, summary, images))
    return Report(out_dir, images, summary)
