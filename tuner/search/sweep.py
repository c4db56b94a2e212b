"""Launch and resume sweeps: Tuner + OptunaSearch (TPE, warm-started) + ASHA + ConcurrencyLimiter.

``launch`` builds the experiment from a base config and a space, writes
``motiontune.json``, runs it and writes ``trials.parquet`` / ``history.parquet``.
``resume`` restores an interrupted experiment with ``Tuner.restore``: finished
trials stay as they were, unfinished ones continue from their checkpoints,
errored ones are retried, and the remaining samples are drawn.

After the search, the verification (``tuner.verify``) re-trains the finalists
and the base config on fresh seeds; ``resume`` continues it too, and
``verify_experiment`` runs one on an experiment that has none.
"""

from __future__ import annotations

import datetime as _dt
import os
import warnings
from dataclasses import dataclass
from typing import Any

from search_spaces.define import define_by_run
from search_spaces.mapping import config_to_params
from search_spaces.spec import SearchSpace, load_space, space_from_dict
from trainer_core.config import TrainConfig
from trainer_core.config_load import load_config, smoke_config
from trainer_core.data.datasets import load_dataset
from trainer_core.errors import ConfigError
from trainer_core.train.loop import metric_names
from trainer_core.train.schedules import plan_epoch
from tuner.experiment import (
    TRIALS_FILE,
    ExperimentError,
    ExperimentMeta,
    check_metric,
    join,
    read_bytes,
    resolve_storage,
)
from tuner.pending import pending_trials
from tuner.results import collect_results, quiet_missing_results, write_results
from tuner.stop import fit
from tuner.storage import check_storage
from tuner.verify import (
    DEFAULT_SEEDS,
    DEFAULT_TOP,
    SMOKE_SEEDS,
    SMOKE_TOP,
    VerifyPlan,
    check_counts,
    check_verify_data,
    make_plan,
    run_verification,
)

SCHEDULERS = ("asha", "fifo")
SEARCHERS = ("optuna", "random")
DEFAULT_STORAGE = "results"
# Save the experiment state often, so a killed sweep loses at most a few seconds of bookkeeping.
EXPERIMENT_STATE_PERIOD_S = "2"


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
    metric: str | None = None
    mode: str | None = None
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


def smoke_base() -> dict[str, Any]:
    """A base config whose trials take seconds (``trainer_core.config_load.smoke_config``)."""
    return smoke_config().to_dict()


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
    if o.mode is not None and o.mode not in ("min", "max"):
        problems.append(f"--mode is {o.mode!r}, but must be min or max")
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
    if problems:
        raise ConfigError("; ".join(problems))
    check_counts(o.verify_top, o.verify_seeds, "--verify-top", "--verify-seeds")


def verify_settings(o: SweepOptions, base: TrainConfig) -> dict[str, Any] | None:
    """What the verification after the search will do, or None with ``--no-verify``."""
    if not o.verify:
        return None
    top = o.verify_top if o.verify_top is not None else (SMOKE_TOP if o.smoke_test else DEFAULT_TOP)
    seeds = o.verify_seeds if o.verify_seeds is not None else (SMOKE_SEEDS if o.smoke_test else DEFAULT_SEEDS)
    data = check_verify_data(o.verify_data, base.data.data) if o.verify_data else None
    return {"top": top, "seeds": seeds, "data": data}


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
    if o.epochs is not None:
        base = base.with_epochs(o.epochs)
        base.validate("--epochs")
    metric = o.metric or base.run.objective
    mode = o.mode or (base.run.objective_mode if metric == base.run.objective else "min")
    check_metric(metric, metric_names())
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
        samples=o.samples,
        max_concurrent=o.max_concurrent or 0,
        scheduler=o.scheduler,
        searcher=o.searcher,
        seed=o.seed,
        resources={"cpu": o.cpus_per_trial, "gpu": o.gpus_per_trial, **(o.resources or {})},
        data_fingerprint=dataset.fingerprint,
        warm_start=warm,
        optuna_storage=o.optuna_storage,
        extra={
            "epochs": base.optim.epochs,
            "grace_period": o.grace_period or default_grace_period(base),
            "reduction_factor": 2 if o.smoke_test else o.reduction_factor,
            "smoke_test": o.smoke_test,
            "budget": o.budget,
            "verify": verify,
            "status_every": o.status_every,
        },
    )


def default_grace_period(base: TrainConfig) -> int:
    """ASHA's first rung: the first epoch that trains the free-run loss in the base config.

    Before it, every trial is still in its teacher-forced stage and its
    ``FreeRun/*`` metrics say little about where its free-run stages will take
    it; early stopping there prunes on the wrong evidence. Without a free-run
    stage, a tenth of the epochs.
    """
    for epoch in range(1, base.optim.epochs + 1):
        if plan_epoch(base, epoch).weights.freerun_weight > 0:
            return epoch
    return max(1, base.optim.epochs // 10)


def _warm_start(space: SearchSpace, base: TrainConfig) -> dict[str, Any] | None:
    try:
        return config_to_params(space, base)
    except ConfigError as e:
        warnings.warn(f"no warm start: {e}", stacklevel=2)
        return None


def _searcher(meta: ExperimentMeta, space: SearchSpace):  # noqa: ANN202
    import optuna
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if meta.searcher == "optuna":
        from tuner.sampler import tpe_sampler

        sampler = tpe_sampler(meta.seed, meta.samples)  # windowed past 250 trials: suggest time stays flat
    else:
        sampler = optuna.samplers.RandomSampler(seed=meta.seed)
    storage = None
    if meta.optuna_storage:
        storage = optuna.storages.RDBStorage(meta.optuna_storage)
    search = OptunaSearch(
        space=define_by_run(space),
        metric=meta.metric,
        mode=meta.mode,
        sampler=sampler,
        points_to_evaluate=[meta.warm_start] if meta.warm_start else None,
        storage=storage,
        study_name=meta.name if storage is not None else None,
    )
    concurrent = meta.max_concurrent or None
    return ConcurrencyLimiter(search, max_concurrent=concurrent) if concurrent else search


def _scheduler(meta: ExperimentMeta):  # noqa: ANN202
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if meta.scheduler == "fifo":
        return FIFOScheduler()
    return ASHAScheduler(
        time_attr="training_iteration",
        max_t=int(meta.extra["epochs"]),
        grace_period=int(meta.extra["grace_period"]),
        reduction_factor=int(meta.extra["reduction_factor"]),
    )


def tune_config(meta: ExperimentMeta, search_alg: Any):  # noqa: ANN201
    """The search's TuneConfig: the searcher, ASHA (or FIFO), the sample count.

    Trials reuse their actors: a trial that ends hands its worker process (torch imported, the trainable
    loaded) to the next trial of the same resources, instead of Ray starting a process per trial, which
    costs a second or more of CPU each (``benchmarks/sweep_scale.py``). Each trial still starts in its
    own working directory, from its own checkpoint, with its own torch thread count.
    """
    from ray import tune

    return tune.TuneConfig(metric=meta.metric, mode=meta.mode, search_alg=search_alg, scheduler=_scheduler(meta),
                           num_samples=meta.samples, reuse_actors=True)  # fmt: skip


def _trainable(meta: ExperimentMeta):  # noqa: ANN202
    from ray import tune

    from tuner.trainable import train_trial

    fn = tune.with_parameters(train_trial, base=meta.base_config, space=meta.space, metric=meta.metric, mode=meta.mode)
    return tune.with_resources(fn, dict(meta.resources))


def _run_config(meta: ExperimentMeta):  # noqa: ANN202
    from ray import tune

    from tuner.progress import TrialEpochBudget, progress_callback
    from tuner.trainable import checkpoint_config

    return tune.RunConfig(
        name=meta.name,
        storage_path=meta.storage,
        checkpoint_config=checkpoint_config(),
        failure_config=tune.FailureConfig(max_failures=2),
        sync_config=tune.SyncConfig(sync_artifacts=True),
        callbacks=[progress_callback(meta, "search", meta.samples, int(meta.extra["epochs"]))],
        stop=TrialEpochBudget(int(meta.extra["budget"])) if meta.extra.get("budget") else None,
        verbose=0,
    )


def init_ray(address: str | None) -> int:
    """Start a local Ray or join the cluster at ``address``; returns how many nodes are alive."""
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", EXPERIMENT_STATE_PERIOD_S)
    # Each checkpoint forces a state snapshot (that is what makes resume exact); short epochs make Ray warn.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if address and "RAY_AUTH_MODE" not in os.environ and _has_ray_token():
        # As Ray does for a local cluster with a token; read when Ray is imported, so set before that.
        os.environ["RAY_AUTH_MODE"] = "token"
    import ray

    quiet_missing_results()
    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except ConnectionError as e:
            raise ExperimentError(
                f"--address {address}: cannot reach a Ray cluster there ({str(e).splitlines()[0]}); check the "
                "address (`ray status` on the head prints it) and, for token auth, RAY_AUTH_TOKEN"
            ) from None
    return sum(1 for n in ray.nodes() if n.get("Alive"))


def _has_ray_token() -> bool:
    from pathlib import Path

    return (
        bool(os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"))
        or (Path.home() / ".ray" / "auth_token").exists()
    )


def launch(o: SweepOptions, meta: ExperimentMeta | None = None) -> dict[str, Any]:
    """Run a sweep to the end. Returns the summary of its results."""
    meta = meta or prepare(o)
    space = space_from_dict(meta.space, "experiment space")
    check_storage(meta.storage, init_ray(o.address), o.shared_storage)
    from ray import tune

    from tuner.lock import experiment_lock

    meta.save()
    with experiment_lock(meta.path, "sweep"):
        tuner = tune.Tuner(_trainable(meta), tune_config=tune_config(meta, _searcher(meta, space)),
                           run_config=_run_config(meta))  # fmt: skip
        with pending_trials(meta.resources, meta.max_concurrent):
            fit(tuner, meta.path)
        return verify_after_search(meta, finish(meta))


def resume(experiment_dir: str, address: str | None = None, shared_storage: bool = False,
           status_every: float | None = None) -> dict[str, Any]:  # fmt: skip
    """Finish an interrupted sweep where it stopped. Refuses while another driver runs the experiment."""
    from tuner.lock import experiment_lock
    from tuner.progress import fresh_callbacks

    check_status_every(status_every)
    meta = ExperimentMeta.load(experiment_dir)
    if status_every is not None:
        meta.extra["status_every"] = status_every
    with experiment_lock(meta.path, "resume"):
        n_nodes = init_ray(address)
        from ray import tune

        if not tune.Tuner.can_restore(meta.path):
            raise ExperimentError(f"{experiment_dir}: holds no Ray Tune experiment state to resume from")
        check_storage(meta.storage, n_nodes, shared_storage)
        tuner = tune.Tuner.restore(meta.path, trainable=_trainable(meta), resume_unfinished=True, resume_errored=True)
        fresh_callbacks(tuner, _run_config(meta).callbacks)  # this driver's progress lines
        with pending_trials(meta.resources, meta.max_concurrent):
            fit(tuner, meta.path)
        return verify_after_search(meta, finish(meta))


def check_status_every(status_every: float | None) -> None:
    if status_every is not None and not status_every > 0:
        raise ConfigError(f"--status-every is {status_every:g}, but must be > 0 seconds")


def verify_after_search(meta: ExperimentMeta, summary: dict[str, Any]) -> dict[str, Any]:
    """Run or continue the experiment's verification, if it asked for one; adds it to ``summary``."""
    plan = VerifyPlan.load(meta)
    settings = meta.extra.get("verify")
    if plan is None and settings:
        try:
            plan = make_plan(meta, int(settings["top"]), int(settings["seeds"]), settings.get("data"))
        except ExperimentError as e:  # the search found nothing to verify: say so, the sweep itself went fine
            warnings.warn(f"no verification: {e}", stacklevel=2)
    if plan is not None:
        print(f"verifying: {len(plan.finalists) - 1} finalist(s) and the base config, {len(plan.seeds)} fresh "
              f"seeds each ({plan.n_trials} trials of {plan.epochs} epochs)", flush=True)  # fmt: skip
        summary["verification"] = run_verification(meta, plan)
    return summary


def verify_experiment(experiment_dir: str, top: int | None = None, seeds: int | None = None,
                      data: str | None = None, address: str | None = None,
                      shared_storage: bool = False, status_every: float | None = None) -> dict[str, Any]:  # fmt: skip
    """``motiontune verify``: verify a finished sweep that has no verification (or finish its unfinished one)."""
    from tuner.lock import experiment_lock

    check_counts(top, seeds, "--top", "--seeds")
    check_status_every(status_every)
    meta = ExperimentMeta.load(experiment_dir)
    if status_every is not None:
        meta.extra["status_every"] = status_every
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
        smoke = bool(meta.extra.get("smoke_test"))
        top = top if top is not None else (SMOKE_TOP if smoke else DEFAULT_TOP)
        seeds = seeds if seeds is not None else (SMOKE_SEEDS if smoke else DEFAULT_SEEDS)
        data = check_verify_data(data, meta.base().data.data) if data else None
        plan = make_plan(meta, top, seeds, data)
    check_storage(meta.storage, init_ray(address), shared_storage)
    return {"experiment": meta.path, "metric": meta.metric, "mode": meta.mode,
            "verification": run_verification(meta, plan)}  # fmt: skip


def finish(meta: ExperimentMeta) -> dict[str, Any]:
    trials, history = collect_results(meta)
    write_results(meta, trials, history)
    return {"experiment": meta.path, "trials": trials, "metric": meta.metric, "mode": meta.mode}
