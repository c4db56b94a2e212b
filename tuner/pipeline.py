"""The user's jobs: launch a sweep, resume one, verify one; each a search (``tuner.search``) then a verification.

``launch`` checks the options, describes the experiment (``prepare``: the base config, the space, the objective,
the verification settings), writes ``motiontune.json``, runs the search and then the verification, which
re-trains the finalists and the base config on fresh seeds (``tuner.verify.plan``). ``resume`` finishes an
interrupted sweep: its search, then its verification. ``verify_experiment`` (``motiontune verify``) verifies a
finished sweep that has none, or finishes its unfinished one. Each job holds the experiment's lock while it runs.

The verification's defaults, the finalists (``--top``/``--verify-top``) and the fresh seeds per config
(``--seeds``/``--verify-seeds``), are here, once: ``verify_counts``.
"""

from __future__ import annotations

import datetime as _dt
import warnings
from dataclasses import dataclass
from typing import Any

from search_spaces.mapping import config_to_params
from search_spaces.spec import SearchSpace, load_space, space_from_dict
from trainer_core.config import TrainConfig
from trainer_core.config_load import load_config, smoke_config
from trainer_core.data.datasets import load_dataset
from trainer_core.errors import ConfigError, raise_all
from trainer_core.train.group_eval import group_metric_names, spec_groups
from trainer_core.train.long_eval import METRICS as LONG_METRICS
from trainer_core.train.metrics import metric_names
from tuner.experiment.files import ExperimentError, join, read_bytes, resolve_storage
from tuner.experiment.finished import short_state_period
from tuner.experiment.lock import experiment_lock
from tuner.experiment.meta import TRIALS_FILE, ExperimentMeta, VerifySettings
from tuner.experiment.objectives import Constraint, Objective, objectives_from_options
from tuner.experiment.results import no_finished_reason
from tuner.experiment.storage import check_storage
from tuner.search.sweep import SCHEDULERS, SEARCHERS, default_grace_period, init_ray, resume_search, run_search
from tuner.verify.plan import (
    VerifyPlan,
    check_counts,
    check_verify_data,
    make_plan,
    no_verified_reason,
    run_verification,
)

DEFAULT_STORAGE = "results"
DEFAULT_TOP, DEFAULT_SEEDS = 3, 3  # the verification: finalists besides the base config, fresh seeds per config
SMOKE_TOP, SMOKE_SEEDS = 2, 2  # the same with --smoke-test


@dataclass
class SweepOptions:
    config: str | None = None
    space: str = "default"
    samples: int = 16
    max_concurrent: int | None = None
    epochs: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    scheduler: str = "asha"
    searcher: str = "optuna"
    metric: str | list[str] | None = None  # several: a multi-objective sweep (``tuner.experiment.objectives``)
    mode: str | list[str] | None = None  # one per metric, or none
    constraints: list[str] | None = None  # ``METRIC<=BOUND`` / ``METRIC>=BOUND``, Optuna's constraints
    seed: int = 0
    storage: str = DEFAULT_STORAGE
    name: str | None = None
    address: str | None = None
    smoke_test: bool = False
    optuna_storage: str | None = None
    grace_period: int | None = None
    reduction_factor: int = 3
    shared_storage: bool = False  # the user vouches that a local --storage path is mounted on every node
    budget: int | None = None  # stop the whole sweep after this many trial-epochs
    warm_start: bool = True  # the base config as the first trial
    resources: dict[str, float] | None = None  # custom resources each trial needs, e.g. {"gpu_like": 1}
    verify: bool = True  # re-train the finalists and the base config on fresh seeds after the search
    verify_top: int | None = None  # finalists besides the base (default 3; 2 with smoke_test)
    verify_seeds: int | None = None  # fresh seeds per config (default 3; 2 with smoke_test)
    verify_data: str | None = None  # a dataset folder every re-trained model is also evaluated on
    status_every: float = 30.0  # seconds between status lines (and one on each trial event)


def validate_options(o: SweepOptions) -> None:
    problems = []
    if o.samples < 1:
        problems.append(f"--samples is {o.samples}, but must be >= 1")
    if o.max_concurrent is not None and o.max_concurrent < 1:
        problems.append(f"--max-concurrent is {o.max_concurrent}, but must be >= 1")
    if not o.cpus_per_trial > 0:
        problems.append(f"--cpus-per-trial is {o.cpus_per_trial:g}, but must be > 0")
    if o.gpus_per_trial < 0:
        problems.append(f"--gpus-per-trial is {o.gpus_per_trial:g}, but must be >= 0 (fractions share a GPU)")
    if o.scheduler not in SCHEDULERS:
        problems.append(f"--scheduler is {o.scheduler!r}, but must be one of {', '.join(SCHEDULERS)}")
    if o.searcher not in SEARCHERS:
        problems.append(f"--searcher is {o.searcher!r}, but must be one of {', '.join(SEARCHERS)}")
    if o.epochs is not None and o.epochs < 1:
        problems.append(f"--epochs is {o.epochs}, but must be >= 1")
    for name, amount in (o.resources or {}).items():
        if not amount > 0:
            problems.append(f"--resource {name}={amount:g}: the amount must be > 0")
    if o.grace_period is not None and o.grace_period < 1:
        problems.append(f"--grace-period is {o.grace_period}, but must be >= 1")
    if o.budget is not None and o.budget < 1:
        problems.append(f"--budget is {o.budget}, but must be >= 1 trial-epoch")
    if not o.status_every > 0:
        problems.append(f"--status-every is {o.status_every:g}, but must be > 0 seconds")
    if o.reduction_factor < 2:
        problems.append(f"--reduction-factor is {o.reduction_factor}, but must be >= 2")
    raise_all(problems, ConfigError)
    check_counts(o.verify_top, o.verify_seeds, "--verify-top", "--verify-seeds")


def verify_counts(top: int | None, seeds: int | None, smoke_test: bool) -> tuple[int, int]:
    """The verification's finalists and fresh seeds per config: as asked, else the defaults (fewer for a smoke test)."""
    default_top, default_seeds = (SMOKE_TOP, SMOKE_SEEDS) if smoke_test else (DEFAULT_TOP, DEFAULT_SEEDS)
    return (top if top is not None else default_top), (seeds if seeds is not None else default_seeds)


def verify_settings(o: SweepOptions, base: TrainConfig) -> VerifySettings | None:
    """What the verification after the search will do, or None with ``--no-verify``."""
    if not o.verify:
        return None
    top, seeds = verify_counts(o.verify_top, o.verify_seeds, o.smoke_test)
    data = check_verify_data(o.verify_data, base.data.data) if o.verify_data else None
    return VerifySettings(top, seeds, data)


def prepare(o: SweepOptions) -> ExperimentMeta:
    """Check everything and describe the experiment; nothing is written or started yet."""
    validate_options(o)
    space = load_space(o.space if not o.smoke_test or o.space != "default" else "small")
    if o.config is not None:
        base = load_config(o.config)
    elif o.smoke_test:
        base = smoke_config()
    else:
        base = load_config()
    trial_base = base  # the base as a trial runs it; the given one is stored, its params apply to its stages
    if o.epochs is not None:
        trial_base = base.with_epochs(o.epochs)
        trial_base.validate("--epochs")
    objectives, constraints = sweep_objectives(o, base)
    metric, mode = objectives[0].metric, objectives[0].mode
    dataset = load_dataset(base.data.data)  # fails early on bad data, and fingerprints it
    verify = verify_settings(o, base)
    warm = _warm_start(space, base) if o.warm_start else None
    return ExperimentMeta(
        name=o.name or f"sweep-{_dt.datetime.now():%Y%m%d-%H%M%S}",
        storage=resolve_storage(o.storage),
        base_config=base.to_dict(),
        space=space.raw,
        space_name=space.name,
        metric=metric,
        mode=mode,
        extra_objectives={ob.metric: ob.mode for ob in objectives[1:]},
        constraints=[str(c) for c in constraints],
        samples=o.samples,
        max_concurrent=o.max_concurrent or 0,
        scheduler=o.scheduler,
        searcher=o.searcher,
        seed=o.seed,
        resources={"cpu": o.cpus_per_trial, "gpu": o.gpus_per_trial, **(o.resources or {})},
        data_fingerprint=dataset.fingerprint,
        warm_start=warm,
        optuna_storage=o.optuna_storage,
        epochs=trial_base.optim.epochs,
        grace_period=o.grace_period or default_grace_period(trial_base),
        reduction_factor=2 if o.smoke_test else o.reduction_factor,
        smoke_test=o.smoke_test,
        budget=o.budget,
        verify=verify,
        status_every=o.status_every,
    )


def _listed(value: str | list[str] | None) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def sweep_objectives(o: SweepOptions, base: TrainConfig) -> tuple[list[Objective], list[Constraint]]:
    """The sweep's objectives (``--metric``/``--mode``, default the base config's objective) and constraints.

    Any metric an epoch reports may be an objective or constrained, and so may the long validation's
    (``FreeRun/long/*``) when the base config validates long; the first objective, which ASHA stops on and
    ``best_model.pt`` is kept by, must be one every epoch computes.
    """
    metrics, modes = _listed(o.metric) or [base.run.objective], _listed(o.mode)
    default_mode = base.run.objective_mode if metrics[0] == base.run.objective else "min"
    known = [*metric_names(), *group_metric_names(spec_groups(base.data.motion_groups)), *LONG_METRICS]
    objectives = objectives_from_options(metrics, modes, known, default_mode)
    constraints = [Constraint.parse(c, known) for c in o.constraints or []]
    problems = []
    if objectives[0].metric in LONG_METRICS:
        problems.append(f"--metric {objectives[0].metric}: the first objective is the one ASHA stops on and the "
                        "best epoch is kept by, so it must be one every epoch reports; put a FreeRun/long/* metric "
                        "after it, e.g. --metric FreeRun/GeoDeg --metric " + objectives[0].metric)  # fmt: skip
    long_used = [m for m in [*(ob.metric for ob in objectives), *(c.metric for c in constraints)] if m in LONG_METRICS]
    if long_used and base.freerun.eval_long_every == 0:
        problems.append(f"{long_used[0]}: the base config has eval_long_every 0, so no trial validates long; set "
                        "eval_long_every (e.g. 1) in the --config")  # fmt: skip
    raise_all(problems, ConfigError)
    return objectives, constraints


def _warm_start(space: SearchSpace, base: TrainConfig) -> dict[str, Any] | None:
    try:
        return config_to_params(space, base)
    except ConfigError as e:
        warnings.warn(f"no warm start: {e}", stacklevel=2)
        return None


def launch(o: SweepOptions, meta: ExperimentMeta | None = None) -> dict[str, Any]:
    """Run a sweep to the end. Returns the summary of its results."""
    meta = meta or prepare(o)
    space = space_from_dict(meta.space, "experiment space")
    check_storage(meta.storage, init_ray(o.address), o.shared_storage)
    meta.save()
    with experiment_lock(meta.path, "sweep"):
        return verify_after_search(meta, run_search(meta, space))


def resume(experiment_dir: str, address: str | None = None, shared_storage: bool = False,
           status_every: float | None = None) -> dict[str, Any]:  # fmt: skip
    """Finish an interrupted sweep where it stopped. Refuses while another driver runs the experiment."""
    check_status_every(status_every)
    meta = ExperimentMeta.load(experiment_dir)
    if status_every is not None:
        meta.status_every = status_every
    with experiment_lock(meta.path, "resume"):
        return verify_after_search(meta, resume_search(meta, experiment_dir, address, shared_storage))


def check_status_every(status_every: float | None) -> None:
    if status_every is not None and not status_every > 0:
        raise ConfigError(f"--status-every is {status_every:g}, but must be > 0 seconds")


def verify_after_search(meta: ExperimentMeta, summary: dict[str, Any]) -> dict[str, Any]:
    """Run or continue the experiment's verification, if it asked for one; adds it to ``summary`` (and
    ``verification_failed``: why no verification trial finished, None when one did). A search in which no trial
    finished has nothing to verify: the command's error line says so."""
    plan = VerifyPlan.load(meta)
    settings = meta.verify
    if plan is None and settings and no_finished_reason(summary["trials"], meta.metric) is None:
        try:
            plan = make_plan(meta, settings.top, settings.seeds, settings.data)
        except ExperimentError as e:  # the search found nothing to verify: say so, the sweep itself went fine
            warnings.warn(f"no verification: {e}", stacklevel=2)
    if plan is not None:
        print(f"verifying: {len(plan.finalists) - 1} finalist(s) and the base config, {len(plan.seeds)} fresh "
              f"seeds each ({plan.n_trials} trials of {plan.epochs} epochs)", flush=True)  # fmt: skip
        with short_state_period():  # the verification has no record of its finished trials
            summary["verification"] = run_verification(meta, plan)
        summary["verification_failed"] = no_verified_reason(meta, plan, summary["verification"])
    return summary


def verify_experiment(experiment_dir: str, top: int | None = None, seeds: int | None = None,
                      data: str | None = None, address: str | None = None,
                      shared_storage: bool = False, status_every: float | None = None) -> dict[str, Any]:  # fmt: skip
    """``motiontune verify``: verify a finished sweep that has no verification (or finish its unfinished one)."""
    check_counts(top, seeds, "--top", "--seeds")
    check_status_every(status_every)
    meta = ExperimentMeta.load(experiment_dir)
    if status_every is not None:
        meta.status_every = status_every
    with experiment_lock(meta.path, "verify"):
        return _verify_locked(meta, experiment_dir, top, seeds, data, address, shared_storage)


def _verify_locked(meta: ExperimentMeta, experiment_dir: str, top: int | None, seeds: int | None, data: str | None,
                   address: str | None, shared_storage: bool) -> dict[str, Any]:  # fmt: skip
    plan = VerifyPlan.load(meta)
    if plan is not None:
        asked = {"--top": (top, plan.top), "--seeds": (seeds, len(plan.seeds))}
        differ = [f"{flag} {want} (it has {have})" for flag, (want, have) in asked.items()
                  if want is not None and want != have]  # fmt: skip
        if differ or (data and data != plan.data):
            raise ExperimentError(
                f"{experiment_dir}: already has a verification (top {plan.top}, {len(plan.seeds)} seeds), not "
                f"{', '.join(differ) or '--verify-data ' + str(data)}; delete its verification/, "
                "verification_plan.json and verification.parquet to verify with other settings"
            )
    elif read_bytes(join(meta.path, TRIALS_FILE)) is None:
        raise ExperimentError(
            f"{experiment_dir}: its search has not finished (no {TRIALS_FILE}); finish it with "
            f"`motiontune resume {experiment_dir}` first"
        )
    else:
        top, seeds = verify_counts(top, seeds, meta.smoke_test)
        data = check_verify_data(data, meta.base().data.data) if data else None
        plan = make_plan(meta, top, seeds, data)
    check_storage(meta.storage, init_ray(address), shared_storage)
    with short_state_period():
        table = run_verification(meta, plan)
    return {"experiment": meta.path, "metric": meta.metric, "mode": meta.mode, "verification": table,
            "verification_failed": no_verified_reason(meta, plan, table)}  # fmt: skip
