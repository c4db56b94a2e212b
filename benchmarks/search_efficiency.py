"""How fast each search strategy finds a good config, for the same compute budget (trial-epochs).

On the bundled real data, in one process, with the same seeds and budget:

- ``seed_tpe``: the guide's approach (``train_configurator --bayes-opt``): serial
  Optuna TPE, every trial full length, no early stopping, no warm start;
- ``random_asha``: random search + ASHA on Ray Tune;
- ``tpe_asha``: motiontune's sweep: TPE + ASHA, warm-started with the base config.

Target: the base config's own objective (trained once, full length, same
seed), then 10% better. Printed per strategy, averaged over seeds with the
standard deviation: the best objective reached, the trial-epochs and wall
seconds until the best-so-far first reached each target, and ratios against
``seed_tpe`` (speed-up = seed_tpe's cost / the strategy's). A run that never
reached a target counts its whole budget (shown as ``>``).

Then the winner's curse: each strategy's pick (its best config) is re-trained
on fresh seeds (``tuner.verify.fresh_seeds``, the same for every pick and for
the base config), full length, and its verified mean is printed beside its
search-time best, with the verified difference to the base config on the same
seeds: how much of the gain a strategy found survives re-training.

    python benchmarks/search_efficiency.py --quick     # CI-sized: tiny model, small space
    python benchmarks/search_efficiency.py             # full: larger model, default space
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import optuna
import pandas as pd

from search_spaces.define import define_by_run
from search_spaces.mapping import params_to_config
from search_spaces.spec import SearchSpace, load_space
from trainer_core.config import TrainConfig
from trainer_core.config_load import config_from_dict, load_config
from trainer_core.train.loop import EpochResult, fit
from tuner.experiment.results import finished_trials, trial_params
from tuner.pipeline import SweepOptions, launch
from tuner.search.sweep import init_ray, smoke_base
from tuner.verify.plan import fresh_seeds

METRIC = "FreeRun/GeoDeg"
STRATEGIES = ("seed_tpe", "random_asha", "tpe_asha")


@dataclasses.dataclass
class Mode:
    base: TrainConfig
    space: str
    budget: int  # trial-epochs per run
    seeds: tuple[int, ...]


def quick_mode() -> Mode:
    return Mode(config_from_dict(smoke_base(), "quick base"), "small", budget=48, seeds=(0, 1, 2))


def full_mode() -> Mode:
    raw = load_config().with_epochs(12).to_dict()
    raw.update(hidden_dim=256, num_layers=2, steps_per_epoch=25)
    return Mode(config_from_dict(raw, "full base"), "default", budget=192, seeds=(0, 1, 2))


@dataclasses.dataclass
class Trace:
    """Best-so-far after each trial-epoch, with the wall seconds at which it was reported."""

    best: list[float]
    seconds: list[float]
    pick: TrainConfig  # the config of the best trial
    verified: float = math.nan  # the pick's mean over the fresh seeds

    def reach(self, target: float) -> tuple[float, float] | None:
        for k, (b, t) in enumerate(zip(self.best, self.seconds)):
            if b <= target:
                return k + 1, t
        return None


def _best_of(values: list[float]) -> list[float]:
    out, best = [], math.inf
    for v in values:
        if v == v and v < best:  # NaN-safe
            best = v
        out.append(best)
    return out


def train_best(cfg: TrainConfig, out: Path) -> float:
    """``cfg`` trained full length into ``out``; its best epoch's objective."""
    best = math.inf

    def on_epoch(r: EpochResult) -> None:
        nonlocal best
        best = min(best, r.metrics[METRIC])

    fit(cfg, out, on_epoch=on_epoch, log=lambda _: None)
    return best


def base_objective(mode: Mode, work: Path) -> float:
    """The base config trained once, full length: the first target."""
    return train_best(mode.base, work / "base")


def verified_values(cfg: TrainConfig, seeds: list[int], work: Path) -> list[float]:
    """``cfg`` re-trained on each fresh seed (the config key ``seed``): the best objective of each run."""
    raw = cfg.to_dict()
    return [train_best(config_from_dict({**raw, "seed": s}, "verified pick"), work / f"seed{s}") for s in seeds]


def tune_pick(space: SearchSpace, base: TrainConfig, experiment: Path) -> TrainConfig:
    """The config of a sweep's best finished trial."""
    trials = pd.read_parquet(experiment / "trials.parquet")
    ok = finished_trials(trials, METRIC)
    return params_to_config(space, trial_params(ok.loc[ok[f"best/{METRIC}"].idxmin()]), base)


def run_seed_tpe(mode: Mode, seed: int, work: Path) -> Trace:
    """Serial Optuna TPE over full-length trials, each trained in this process."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = load_space(mode.space)
    define = define_by_run(space)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
    values: list[float] = []
    seconds: list[float] = []
    pick, pick_value = mode.base, math.inf
    t0 = time.perf_counter()
    for i in range(mode.budget // mode.base.optim.epochs):
        trial = study.ask()
        define(trial)
        cfg = params_to_config(space, trial.params, mode.base)
        trial_best = math.inf

        def on_epoch(r: EpochResult) -> None:
            nonlocal trial_best
            trial_best = min(trial_best, r.metrics[METRIC])
            values.append(r.metrics[METRIC])
            seconds.append(time.perf_counter() - t0)

        fit(cfg, work / f"seed_tpe_{seed}_{i}", on_epoch=on_epoch, log=lambda _: None)
        study.tell(trial, trial_best)
        if trial_best < pick_value:
            pick, pick_value = cfg, trial_best
    return Trace(_best_of(values), seconds, pick)


def run_tune(mode: Mode, seed: int, work: Path, searcher: str, warm: bool, name: str) -> Trace:
    (work / "base.json").write_text(json.dumps(mode.base.to_dict()))
    opts = SweepOptions(
        config=str(work / "base.json"), space=mode.space, samples=mode.budget, max_concurrent=2,
        cpus_per_trial=1, scheduler="asha", searcher=searcher, seed=seed, storage=str(work), name=name,
        budget=mode.budget, warm_start=warm, verify=False,
    )  # fmt: skip
    t0 = time.time()
    launch(opts)
    h = pd.read_parquet(work / name / "history.parquet").sort_values("report_time")
    h = h[h.get("diverged", 0) != 1]
    pick = tune_pick(load_space(mode.space), mode.base, work / name)
    return Trace(_best_of(list(h[METRIC])), list(h["report_time"] - t0), pick)


def _fmt(values: list[float], fmt: str = ".2f") -> str:
    if not values:
        return "-"
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:{fmt}} ± {sd:{fmt}}"


def summarise(traces: dict[str, list[Trace]], targets: dict[str, float], budget: int,
              base_verified: float = math.nan) -> str:  # fmt: skip
    rows = []
    cost: dict[tuple[str, str], list[float]] = {}
    for strat, runs in traces.items():
        row = {"strategy": strat, "best": _fmt([r.best[-1] for r in runs], ".3f")}
        if math.isfinite(base_verified):
            row["verified pick"] = _fmt([r.verified for r in runs], ".3f")
            row["verified - base"] = _fmt([r.verified - base_verified for r in runs], ".3f")
        for tname, target in targets.items():
            epochs, secs, missed = [], [], 0
            for r in runs:
                hit = r.reach(target)
                if hit is None:
                    missed += 1
                    epochs.append(float(budget))
                    secs.append(r.seconds[-1])
                else:
                    epochs.append(hit[0])
                    secs.append(hit[1])
            cost[(strat, tname)] = epochs
            reached = f"{len(runs) - missed}/{len(runs)}"
            row[f"epochs to {tname}"] = ("> " if missed else "") + _fmt(epochs, ".1f") + f" ({reached})"
            row[f"wall s to {tname}"] = _fmt(secs, ".1f")
        rows.append(row)
    for row in rows:
        base_best = statistics.fmean([r.best[-1] for r in traces["seed_tpe"]])
        own_best = statistics.fmean([r.best[-1] for r in traces[row["strategy"]]])
        row["best vs seed_tpe"] = f"{own_best / base_best:.2f}x"
        for tname in targets:
            speed = statistics.fmean(cost[("seed_tpe", tname)]) / statistics.fmean(cost[(row["strategy"], tname)])
            row[f"speed-up to {tname}"] = f"{speed:.2f}x"
    return markdown_table(rows)


def markdown_table(rows: list[dict[str, str]]) -> str:
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="CI-sized run (tiny model, small space)")
    ap.add_argument("--seeds", type=int, nargs="+", help="override the seeds (default 0 1 2)")
    ap.add_argument("--verify-seeds", type=int, default=3, help="fresh seeds each pick is re-trained on (0: skip)")
    args = ap.parse_args()
    mode = quick_mode() if args.quick else full_mode()
    if args.seeds:
        mode = dataclasses.replace(mode, seeds=tuple(args.seeds))
    work = Path(tempfile.mkdtemp(prefix="search_efficiency_"))
    init_ray(None)  # once, outside every timing
    t_all = time.perf_counter()
    v0 = base_objective(mode, work)
    targets = {"base": v0, "base-10%": 0.9 * v0}
    traces: dict[str, list[Trace]] = {s: [] for s in STRATEGIES}
    for seed in mode.seeds:
        traces["seed_tpe"].append(run_seed_tpe(mode, seed, work))
        traces["random_asha"].append(run_tune(mode, seed, work, "random", False, f"random_asha_{seed}"))
        traces["tpe_asha"].append(run_tune(mode, seed, work, "optuna", True, f"tpe_asha_{seed}"))
        print(f"seed {seed} done ({time.perf_counter() - t_all:.0f}s)", flush=True)
    vseeds = fresh_seeds(mode.base.run.seed, args.verify_seeds)
    base_verified = math.nan
    if vseeds:
        base_runs = verified_values(mode.base, vseeds, work / "verify_base")
        base_verified = statistics.fmean(base_runs)
        for strat, runs in traces.items():
            for k, r in enumerate(runs):
                r.verified = statistics.fmean(verified_values(r.pick, vseeds, work / f"verify_{strat}_{k}"))
        print(f"verified ({time.perf_counter() - t_all:.0f}s)", flush=True)
    E = mode.base.optim.epochs
    print()
    print(f"{'quick' if args.quick else 'full'} mode: space `{mode.space}`, {E} epochs per full trial, "
          f"budget {mode.budget} trial-epochs per run, seeds {list(mode.seeds)}, objective {METRIC} (min)")  # fmt: skip
    print(f"targets: the base config's own {METRIC} {v0:.3f}, and 10% better {0.9 * v0:.3f}")
    if vseeds:
        print(f"verified: each pick and the base re-trained on seeds {vseeds}, full length; the base's mean "
              f"{base_verified:.3f} ± {statistics.stdev(base_runs) if len(base_runs) > 1 else 0.0:.3f}")  # fmt: skip
    print()
    print(summarise(traces, targets, mode.budget, base_verified))
    print(f"\ntotal {time.perf_counter() - t_all:.0f}s; runs in {work}")


if __name__ == "__main__":
    main()
