"""Verification: re-train the search's finalists and the base config on fresh seeds before one is called best.

A search picks its best trial on one seed and on the validation clips it also
selected on, so its best value carries the winner's curse. The verification
re-trains the top K configs (by their search-time best, the base config's own
warm-start trial left out) and the base config on S seeds no search trial used
(the same S for every config, so every comparison is paired), each for the
full epochs with no early stopping, as the trials of a second Ray Tune
experiment that runs in parallel on the sweep's resources.

Files, inside the experiment directory:

- ``verification_plan.json``: the finalists (label, search trial, params,
  search-time value) and the seeds, written before any re-training starts, so
  ``motiontune resume`` continues the same verification;
- ``verification/``: the Ray Tune experiment of the re-training trials (one
  per config and seed; finished ones are kept on resume);
- ``verification.parquet``: the verified ranking (``tuner.verify.stats``).
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from trainer_core.errors import ConfigError, DataError, raise_all
from tuner.experiment.files import ExperimentError, join, read_bytes, write_bytes
from tuner.experiment.meta import ExperimentMeta
from tuner.experiment.objectives import spread
from tuner.experiment.results import (
    AT_BEST,
    collect_results,
    finished_trials,
    no_finished_reason,
    rank_trials,
    trial_params,
)
from tuner.search.stop import fit
from tuner.verify.stats import EXTRA_PREFIXES, verification_table

VERIFY_DIR = "verification"
PLAN_FILE = "verification_plan.json"
RESULT_FILE = "verification.parquet"
BASE_LABEL = "base"
SEED_OFFSET = 1000  # verification seeds are base seed + 1000, + 1001, ...: never a seed the search trained with


@dataclass
class Finalist:
    """One config to re-train: a search trial's params, or the base config as it is (``params`` None)."""

    label: str  # the search trial's id, or "base"
    trial_id: str | None  # the search trial it comes from (the base's warm-start trial, if it ran)
    params: dict[str, Any] | None
    search_value: float  # its best objective in the search (NaN: never searched)
    search_rank: int | None  # its place in the search's ranking, 1 = best


@dataclass
class VerifyPlan:
    top: int
    seeds: list[int]
    metric: str
    mode: str
    epochs: int
    finalists: list[Finalist]
    data: str | None = None  # --verify-data: a dataset folder each re-trained model is also evaluated on
    base_label: str = BASE_LABEL
    objectives: dict[str, str] = field(default_factory=dict)  # a multi-objective sweep's objectives after the first
    constraints: list[str] = field(default_factory=list)

    @property
    def n_trials(self) -> int:
        return len(self.finalists) * len(self.seeds)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for f in d["finalists"]:
            f["search_value"] = f["search_value"] if math.isfinite(f["search_value"]) else None
        return d

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> VerifyPlan:
        finalists = [Finalist(**{**f, "search_value": _float(f["search_value"])}) for f in raw["finalists"]]
        return cls(**{**raw, "finalists": finalists})

    def save(self, meta: ExperimentMeta) -> None:
        write_bytes(join(meta.path, PLAN_FILE), (json.dumps(self.to_dict(), indent=2) + "\n").encode())

    @classmethod
    def load(cls, meta: ExperimentMeta) -> VerifyPlan | None:
        data = read_bytes(join(meta.path, PLAN_FILE))
        if data is None:
            return None
        try:
            return cls.from_dict(json.loads(data))
        except (json.JSONDecodeError, TypeError, KeyError) as e:
            raise ExperimentError(f"{join(meta.path, PLAN_FILE)}: unreadable ({e}); delete it to plan anew") from None


def _float(v: Any) -> float:
    return math.nan if v is None else float(v)


def check_counts(top: int | None, seeds: int | None, top_flag: str, seeds_flag: str) -> None:
    problems = []
    if top is not None and top < 1:
        problems.append(f"{top_flag} is {top}, but must be >= 1 (finalists to re-train besides the base config)")
    if seeds is not None and seeds < 1:
        problems.append(f"{seeds_flag} is {seeds}, but must be >= 1 (seeds per config; 2 or more give an interval)")
    raise_all(problems, ConfigError)


def fresh_seeds(search_seed: int, n: int) -> list[int]:
    """``n`` trainer seeds no search trial used (every search trial trains with the base config's ``seed``)."""
    return [search_seed + SEED_OFFSET + i for i in range(n)]


def check_verify_data(folder: str, train_data: str | None) -> str:
    """The ``--verify-data`` folder, absolute, after checking it loads and has the training data's skeleton."""
    from trainer_core.data.datasets import load_dataset

    other, train = load_dataset(folder), load_dataset(train_data)
    if list(other.skeleton.bones) != list(train.skeleton.bones):
        first = next((i for i, (a, b) in enumerate(zip(other.skeleton.bones, train.skeleton.bones)) if a != b),
                     min(len(other.skeleton.bones), len(train.skeleton.bones)))  # fmt: skip
        raise DataError(
            f"--verify-data {folder}: its skeleton differs from the training data's at joint {first}; "
            "pass a dataset folder of the same skeleton"
        )
    if other.fingerprint == train.fingerprint:
        raise DataError(f"--verify-data {folder}: is the training data itself; pass clips no trial trained on")
    return str(Path(folder).expanduser().resolve())


def make_plan(meta: ExperimentMeta, top: int, n_seeds: int, data: str | None = None) -> VerifyPlan:
    """The finalists of a finished search and fresh seeds; raises before anything is written."""
    check_counts(top, n_seeds, "--top", "--seeds")
    trials, history = collect_results(meta)
    if finished_trials(trials, meta.metric).empty:
        raise ExperimentError(
            f"{meta.path}: no finished trial to verify: every trial diverged, failed or is still running "
            "(`motiontune resume` finishes running ones)"
        )
    ranked = rank_trials(trials, history, meta.metric, meta.mode)
    ranked["search_rank"] = range(1, len(ranked) + 1)
    warm = ranked["warm_start"].astype(bool) if "warm_start" in ranked else pd.Series(False, index=ranked.index)
    challengers = _challengers(ranked[~warm], top)
    if challengers.empty:
        which = "finished feasible" if meta.constraints else "finished"
        raise ExperimentError(f"{meta.path}: no {which} trial besides the base config's own to verify")
    finalists = [
        Finalist(str(r["trial_id"]), str(r["trial_id"]), trial_params(r), float(r["value"]), int(r["search_rank"]))
        for _, r in challengers.iterrows()
    ]
    base_rows = ranked[warm]
    b = base_rows.iloc[0] if len(base_rows) else None
    finalists.append(Finalist(
        BASE_LABEL, str(b["trial_id"]) if b is not None else None, None,
        float(b["value"]) if b is not None else math.nan, int(b["search_rank"]) if b is not None else None,
    ))  # fmt: skip
    return VerifyPlan(top, fresh_seeds(meta.base().run.seed, n_seeds), meta.metric, meta.mode, meta.epochs,
                      finalists, data, objectives=dict(meta.extra_objectives),
                      constraints=list(meta.constraints))  # fmt: skip


def _challengers(ranked: pd.DataFrame, top: int) -> pd.DataFrame:
    """The finalists besides the base, from the search's ranking by the first objective (best first): with
    constraints, feasible trials only; with several objectives, ``top`` points spread along the front, its two
    ends first among them (the front sorted by the first objective)."""
    if "feasible" in ranked:
        ranked = ranked[ranked["feasible"].astype(bool)]
    if "pareto" not in ranked:
        return ranked.head(top)
    front = ranked[ranked["pareto"].astype(bool)]  # still sorted by the first objective
    return front.iloc[spread(len(front), top)]


def _sub_meta(meta: ExperimentMeta, plan: VerifyPlan) -> ExperimentMeta:
    """The verification's Ray Tune experiment, described as an experiment of its own for ``collect_results``."""
    return dataclasses.replace(meta, storage=meta.path, name=VERIFY_DIR, warm_start=None,
                               epochs=plan.epochs)  # fmt: skip


def verification_path(meta: ExperimentMeta) -> str:
    return join(meta.path, VERIFY_DIR)


def _trainable(meta: ExperimentMeta, plan: VerifyPlan):  # noqa: ANN202
    from ray import tune

    from tuner.verify.trial import verify_trial

    fn = tune.with_parameters(
        verify_trial, base=meta.base_config, space=meta.space, metric=meta.metric, mode=meta.mode,
        finalists={f.label: f.params for f in plan.finalists}, data=plan.data, epochs=plan.epochs,
    )  # fmt: skip
    return tune.with_resources(fn, dict(meta.resources))


def run_verification(meta: ExperimentMeta, plan: VerifyPlan) -> pd.DataFrame:
    """Run (or continue) the verification on the Ray that is up; writes and returns the verified ranking."""
    from ray import tune
    from ray.tune.schedulers import FIFOScheduler

    from tuner.search.progress import progress_callback
    from tuner.search.trainable import checkpoint_config

    path = verification_path(meta)
    trainable = _trainable(meta, plan)
    if tune.Tuner.can_restore(path):
        tuner = _restored(meta, plan, resume_errored=True)
    else:
        plan.save(meta)
        tuner = tune.Tuner(
            trainable,
            param_space={
                "seed": tune.grid_search(list(plan.seeds)),
                "finalist": tune.grid_search([f.label for f in plan.finalists]),
            },
            tune_config=tune.TuneConfig(scheduler=FIFOScheduler(), max_concurrent_trials=meta.max_concurrent or None),
            run_config=tune.RunConfig(
                name=VERIFY_DIR,
                storage_path=meta.path,
                checkpoint_config=checkpoint_config(),
                failure_config=tune.FailureConfig(max_failures=2),
                sync_config=tune.SyncConfig(sync_artifacts=True),
                callbacks=[progress_callback(meta, "verification", plan.n_trials, plan.epochs, label=_trial_label,
                                             word="verify")],  # fmt: skip
                verbose=0,
            ),
        )
    fit(tuner, meta.path, restart=lambda: _restored(meta, plan))
    return finish_verification(meta, plan)


def _restored(meta: ExperimentMeta, plan: VerifyPlan, resume_errored: bool = False):  # noqa: ANN202
    """The verification's Tuner restored from its saved state, with this driver's progress lines; its errored trials
    retried with ``resume_errored`` (a resumed verification), else left errored (a restart after a memory kill)."""
    from ray import tune

    from tuner.search.progress import fresh_callbacks, progress_callback

    tuner = tune.Tuner.restore(verification_path(meta), trainable=_trainable(meta, plan), resume_unfinished=True,
                               resume_errored=resume_errored)  # fmt: skip
    fresh_callbacks(tuner, [progress_callback(meta, "verification", plan.n_trials, plan.epochs, label=_trial_label,
                                              word="verify")])  # fmt: skip
    return tuner


def _trial_label(trial: Any) -> str:
    return f"{trial.config.get('finalist', '?')} seed {trial.config.get('seed', '?')}"


def verification_runs(meta: ExperimentMeta, plan: VerifyPlan) -> pd.DataFrame:
    """A row per re-training trial: finalist, seed, ok, best, final, best_epoch, trial_id, checkpoint, extras."""
    trials, history = collect_results(_sub_meta(meta, plan))
    if trials.empty:
        return pd.DataFrame(columns=["finalist", "seed", "ok", "best", "final", "best_epoch", "trial_id", "checkpoint"])
    from tuner.search.trainable import RUN_DIR

    m = plan.metric
    runs = pd.DataFrame({
        "finalist": trials["config/finalist"].astype(str),
        "seed": trials["config/seed"].astype(int),
        "ok": trials["status"] == "COMPLETED",
        "status": trials["status"],
        "best": trials[f"best/{m}"],
        "final": trials[f"final/{m}"],
        "best_epoch": trials["best_epoch"],
        "trial_id": trials["trial_id"],
        "checkpoint": [join(str(p), RUN_DIR, "best_model.pt") for p in trials["path"]],
    })  # fmt: skip
    scored = [c for c in trials.columns if c.startswith(AT_BEST)]  # the other objectives at each run's best epoch
    runs = runs.join(trials.set_index("trial_id")[scored], on="trial_id") if scored else runs
    extra = [c for c in history.columns if c.startswith(EXTRA_PREFIXES)]
    if extra:
        last = history.sort_values("epoch").groupby("trial_id")[extra].last()
        runs = runs.join(last, on="trial_id")
    return runs


def finish_verification(meta: ExperimentMeta, plan: VerifyPlan) -> pd.DataFrame:
    # the experiment's objectives and constraints (a plan written before they were recorded in it has none)
    plan = dataclasses.replace(plan, objectives=dict(meta.extra_objectives), constraints=list(meta.constraints))
    table = verification_table(verification_runs(meta, plan), plan)
    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    write_bytes(join(meta.path, RESULT_FILE), buf.getvalue())
    return table


def no_verified_reason(meta: ExperimentMeta, plan: VerifyPlan, table: pd.DataFrame) -> str | None:
    """None when a verification trial finished; else one line saying none did, with the first failed one's error."""
    if len(table) and int(table["n_ok"].sum()) > 0:
        return None
    trials, _ = collect_results(_sub_meta(meta, plan))
    return no_finished_reason(trials, plan.metric, "verification trial") or "no verification trial finished"


def load_verification(meta: ExperimentMeta) -> pd.DataFrame | None:
    """The verified ranking, if this experiment has a finished verification."""
    data = read_bytes(join(meta.path, RESULT_FILE))
    return pd.read_parquet(io.BytesIO(data)) if data is not None else None
