"""A multi-objective sweep in the report: ``front.png``, the front in words, previews of its two ends.

``front.png`` plots the first objective against each other one: every finished trial (grey; a cross when it breaks
a constraint), the front (red, joined in the order of the first objective), the base config's warm-start trial (a
star) and, with a verification, each verified config's mean over its fresh seeds with ± one sd on both axes
(black squares; the base's hollow). Each trial is scored by its best model (``tuner.experiment.objectives``).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from trainer_core.io_utils import atomic_write  # noqa: E402
from tuner.experiment.meta import ExperimentMeta  # noqa: E402
from tuner.experiment.results import AT_BEST, point_column  # noqa: E402
from tuner.report.previews import best_trial_preview  # noqa: E402

FRONT_FILE = "front.png"


def _verified_cols(meta: ExperimentMeta, metric: str) -> tuple[str, str]:
    if metric == meta.metric:
        return "best_mean", "best_sd"
    return f"{AT_BEST}{metric}/mean", f"{AT_BEST}{metric}/sd"


def plot_front(meta: ExperimentMeta, trials: pd.DataFrame, table: pd.DataFrame | None, path: Path) -> None:
    objectives = meta.objectives
    first = objectives[0]
    x = point_column(first.metric, first.metric)
    finished = trials[trials["status"].isin(["COMPLETED", "STOPPED"])]
    feasible = finished["feasible"].astype(bool) if "feasible" in finished else pd.Series(True, index=finished.index)
    front = finished[finished["pareto"].astype(bool)].sort_values(x)
    fig, axes = plt.subplots(1, len(objectives) - 1, figsize=(6.5 * (len(objectives) - 1), 5), squeeze=False)
    for ax, other in zip(axes[0], objectives[1:]):
        y = point_column(other.metric, first.metric)
        ax.scatter(finished.loc[feasible, x], finished.loc[feasible, y], color="0.6", s=18, label="trial")
        if (~feasible).any():
            ax.scatter(finished.loc[~feasible, x], finished.loc[~feasible, y], color="0.6", marker="x", s=24,
                       label="breaks a constraint")  # fmt: skip
        ax.plot(front[x], front[y], "-o", color="tab:red", ms=5, label=f"front ({len(front)})")
        warm = finished[finished["warm_start"].astype(bool)] if "warm_start" in finished else finished.iloc[0:0]
        if len(warm):
            ax.scatter(warm[x], warm[y], marker="*", s=220, color="tab:blue", zorder=5, label="base config (search)")
        if table is not None and _verified_cols(meta, other.metric)[0] in table:
            (xm, xs), (ym, ys) = _verified_cols(meta, first.metric), _verified_cols(meta, other.metric)
            for _, r in table.iterrows():
                ax.errorbar(r[xm], r[ym], xerr=r[xs], yerr=r[ys], fmt="s", color="black", mfc="white" if r["is_base"]
                            else "black", ms=6, capsize=3, zorder=6)  # fmt: skip
                ax.annotate("base" if r["is_base"] else str(r["label"]), (r[xm], r[ym]), fontsize=7,
                            xytext=(4, 4), textcoords="offset points")  # fmt: skip
            ax.errorbar([], [], fmt="s", color="black", label="verified mean ± sd")
        ax.set_xlabel(f"{first.metric} ({first.mode}) at the best epoch")
        ax.set_ylabel(f"{other.metric} ({other.mode}) at that epoch")
        ax.set_title(f"{first.metric} against {other.metric}")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


def front_lines(meta: ExperimentMeta, trials: pd.DataFrame, table: pd.DataFrame | None) -> list[str]:
    """The front in words: each point's objectives (sorted by the first), then the verified points' means."""
    objectives = meta.objectives
    cols = [point_column(o.metric, meta.metric) for o in objectives]
    front = trials[trials.get("pareto", pd.Series(False, index=trials.index)).astype(bool)].sort_values(cols[0])
    n_finished = int(trials["status"].isin(["COMPLETED", "STOPPED"]).sum())
    names = ", ".join(f"{o.metric} {o.mode}" for o in objectives)
    lines = [f"front of {len(front)} trial(s) of {n_finished} finished ({names}; each at its best model):"]
    for _, r in front.iterrows():
        base = "  (base config)" if bool(r.get("warm_start", False)) else ""
        lines.append(f"  trial {r['trial_id']:<9} " + "  ".join(f"{r[c]:.4f}" for c in cols) + base)
    if table is not None and "pareto" in table:
        lines.append("verified (mean ± sd over the fresh seeds; * on the verified front):")
        for _, r in table.iterrows():
            name = "base config" if r["is_base"] else f"trial {r['label']}"
            pairs = (_verified_cols(meta, o.metric) for o in objectives)
            vals = "  ".join(f"{r[m]:.4f} ± {r[s]:.4f}" for m, s in pairs)
            lines.append(f"  {'*' if r['pareto'] else ' '} {name:<18} {vals}")
    return lines


def front_previews(trials: pd.DataFrame, meta: ExperimentMeta, out_dir: Path) -> dict[str, str]:
    """Previews of the front's two ends (best on the first objective, best on the second); file -> caption, or
    reason -> "" where a preview could not be made."""
    cols = [point_column(o.metric, meta.metric) for o in meta.objectives[:2]]
    front = trials[trials["pareto"].astype(bool)].sort_values(cols[0])
    if front.empty:
        return {}
    ends = {"front_end_1.gif": (front.iloc[0], f"The front's end best on {meta.metric}")}
    if len(front) > 1:
        other = meta.objectives[1]
        i = front[cols[1]].idxmin() if other.mode == "min" else front[cols[1]].idxmax()
        ends["front_end_2.gif"] = (front.loc[i], f"The front's end best on {other.metric}")
    out = {}
    for name, (row, what) in ends.items():
        made, caption = best_trial_preview(row, out_dir, name, what)
        out[made or caption] = caption if made else ""
    return out
