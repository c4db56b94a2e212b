"""``verification.png``: the winner's curse made visible.

Per config (verified rank order, left to right): one dot per fresh seed
(coloured by seed, so the pairing across configs shows), to their right the
mean with its 95% t interval, to their left the value the search saw on its
one seed (a red cross). The base config's verified mean is the dashed
reference line.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from trainer_core.io_utils import atomic_write  # noqa: E402


def plot_verification(table: pd.DataFrame, path: Path) -> None:
    """``table``: ``verification.parquet`` (a row per config, best verified first)."""
    metric, mode = str(table["metric"].iloc[0]), str(table["mode"].iloc[0])
    seeds = [int(s) for s in table["seeds"].iloc[0]]
    fig, ax = plt.subplots(figsize=(max(7.0, 1.4 * len(table) + 2), 4.5))
    colors = {s: plt.cm.tab10(i % 10) for i, s in enumerate(seeds)}
    width = 0.25
    shown: set[str] = set()

    def once(label: str) -> str | None:
        """A legend label the first time it is drawn, None after."""
        if label in shown:
            return None
        shown.add(label)
        return label

    for x, (_, r) in enumerate(table.iterrows()):
        for j, (s, v) in enumerate(zip(seeds, r["best_values"])):
            if math.isfinite(v):
                dx = (j - (len(seeds) - 1) / 2) * width / max(1, len(seeds) - 1) if len(seeds) > 1 else 0.0
                ax.scatter(x + dx, v, color=colors[s], s=22, zorder=3, label=once(f"seed {s}"))
        lo, hi, mean = r["best_mean_lo"], r["best_mean_hi"], r["best_mean"]
        if math.isfinite(lo):
            ax.errorbar(x + 0.3, mean, yerr=[[mean - lo], [hi - mean]], fmt="o", color="black", capsize=4, zorder=4,
                        label=once("mean, 95% t interval"))  # fmt: skip
        elif math.isfinite(mean):
            ax.scatter(x + 0.3, mean, color="black", zorder=4, label=once("mean"))
        if math.isfinite(r["search_value"]):
            ax.scatter(x - 0.3, r["search_value"], marker="x", color="tab:red", s=60, zorder=5,
                       label=once("search-time value (1 seed)"))
    base = table[table["is_base"]]
    if len(base) and math.isfinite(base["best_mean"].iloc[0]):
        ax.axhline(base["best_mean"].iloc[0], color="gray", ls="--", lw=1, label="base config, verified mean")
    names = [("base" if r["is_base"] else str(r["label"])) + (f"\nsearch #{r['search_rank']}" if r["search_rank"] > 0
             else "") for _, r in table.iterrows()]  # fmt: skip
    ax.set_xticks(range(len(table)), names, fontsize=8)
    ax.set_xlabel("config, best verified first")
    ax.set_ylabel(f"{metric} (best epoch)")
    better = "lower" if mode == "min" else "higher"
    ax.set_title(f"{metric} on {len(seeds)} fresh seeds per config ({better} is better)", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
