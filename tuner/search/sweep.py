"""The search: Tuner + TPESearch (Optuna's TPE, warm-started) + ASHA + ConcurrencyLimiter.

``run_search`` runs a new experiment's search to its end and writes ``trials.parquet`` /
``history.parquet``. ``resume_search`` restores an interrupted one with ``Tuner.restore``: finished
trials stay as they were, unfinished ones continue from their checkpoints, errored ones are retried,
and the remaining samples are drawn. The user's jobs around them (options, the experiment's metadata,
its lock, the verification after the search) are ``tuner.pipeline``'s.
"""

from __future__ import annotations

import os
from typing import Any

from search_spaces.define import define_by_run
from search_spaces.spec import SearchSpace
from trainer_core.config import TrainConfig
from trainer_core.config_load import smoke_config
from trainer_core.train.schedules import plan_epoch
from tuner.experiment.files import ExperimentError
from tuner.experiment.meta import ExperimentMeta
from tuner.experiment.results import collect_results, quiet_missing_results, write_results
from tuner.experiment.storage import check_storage
from tuner.search.pending import pending_trials
from tuner.search.stop import fit

SCHEDULERS = ("asha", "fifo")
SEARCHERS = ("optuna", "random")


def smoke_base() -> dict[str, Any]:
    """A base config whose trials take seconds (``trainer_core.config_load.smoke_config``)."""
    return smoke_config().to_dict()


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


def searcher(meta: ExperimentMeta, space: SearchSpace):  # noqa: ANN201
    """The search's searcher: ``TPESearch`` over the sweep's TPE (or Optuna's random sampler), warm-started with the
    base config, on every objective and constraint (``tuner.search.multi``), suggesting one trial ahead in sweeps of
    ``PREFETCH_MIN_SAMPLES`` or more, in a ConcurrencyLimiter when the sweep has ``--max-concurrent``."""
    import optuna
    from ray.tune.search import ConcurrencyLimiter

    from tuner.search.multi import FeasibilityFromResult, tpe_with_constraints
    from tuner.search.tpe_search import PREFETCH_MIN_SAMPLES, TPESearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    constraints = meta.constraint_list()
    feasibility = FeasibilityFromResult(constraints) if constraints else None
    if meta.searcher == "optuna":
        # windowed past 250 trials (suggest time stays flat) when there is one objective to window by
        sampler = tpe_with_constraints(meta.seed, meta.samples, feasibility, windowed=not meta.multi_objective)
    else:
        sampler = optuna.samplers.RandomSampler(seed=meta.seed)
    storage = optuna.storages.RDBStorage(meta.optuna_storage) if meta.optuna_storage else None
    objectives = meta.objectives
    search = TPESearch(
        define_by_run(space),
        metric=[o.metric for o in objectives] if meta.multi_objective else meta.metric,
        mode=[o.mode for o in objectives] if meta.multi_objective else meta.mode,
        sampler=sampler,
        points_to_evaluate=[meta.warm_start] if meta.warm_start else None,
        storage=storage,
        study_name=meta.name if storage is not None else None,
        feasibility=feasibility,
        prefetch_until=meta.samples if meta.samples >= PREFETCH_MIN_SAMPLES else 0,
    )
    concurrent = meta.max_concurrent or None
    return ConcurrencyLimiter(search, max_concurrent=concurrent) if concurrent else search


def scheduler(meta: ExperimentMeta):  # noqa: ANN201
    """The search's trial scheduler: ASHA on training iterations (epochs), or FIFO."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if meta.scheduler == "fifo":
        return FIFOScheduler()
    return ASHAScheduler(
        time_attr="training_iteration",
        max_t=meta.epochs,
        grace_period=meta.grace_period,
        reduction_factor=meta.reduction_factor,
    )


def tune_config(meta: ExperimentMeta, search_alg: Any):  # noqa: ANN201
    """The search's TuneConfig: the searcher, ASHA (or FIFO), the sample count.

    Trials reuse their actors: a trial that ends hands its worker process (torch imported, the trainable
    loaded) to the next trial of the same resources, instead of Ray starting a process per trial, which
    costs a second or more of CPU each (``benchmarks/sweep_scale.py``). Each trial still starts in its
    own working directory, from its own checkpoint, with its own torch thread count.
    """
    from ray import tune

    return tune.TuneConfig(metric=meta.metric, mode=meta.mode, search_alg=search_alg, scheduler=scheduler(meta),
                           num_samples=meta.samples, reuse_actors=True)  # fmt: skip


def _trainable(meta: ExperimentMeta, finished: frozenset[str] = frozenset()):  # noqa: ANN202
    """``train_trial`` bound to the experiment; ``finished``: the trials its record holds (a restored search's)."""
    from ray import tune

    from tuner.search.trainable import train_trial

    fn = tune.with_parameters(train_trial, base=meta.base_config, space=meta.space, metric=meta.metric, mode=meta.mode,
                              epochs=meta.epochs, finished=finished)  # fmt: skip
    return tune.with_resources(fn, dict(meta.resources))


def run_config(meta: ExperimentMeta):  # noqa: ANN201
    """The search's RunConfig: where it is stored, checkpoints, retries, the progress lines, the record of finished
    trials (``tuner.experiment.finished``), the epoch budget."""
    from ray import tune

    from tuner.search.progress import TrialEpochBudget, progress_callback
    from tuner.search.recorder import trial_recorder
    from tuner.search.trainable import checkpoint_config

    return tune.RunConfig(
        name=meta.name,
        storage_path=meta.storage,
        checkpoint_config=checkpoint_config(),
        failure_config=tune.FailureConfig(max_failures=2),
        sync_config=tune.SyncConfig(sync_artifacts=True),
        callbacks=[progress_callback(meta, "search", meta.samples, meta.epochs), trial_recorder(meta)],
        stop=TrialEpochBudget(meta.budget) if meta.budget else None,
        verbose=0,
    )


def init_ray(address: str | None) -> int:
    """Start a local Ray or join the cluster at ``address``; returns how many nodes are alive.

    Tune saves the experiment state at its own period (``TUNE_GLOBAL_CHECKPOINT_S``, "auto" unless the user sets it):
    what a killed driver would lose of the trials that finished since is kept by ``tuner.experiment.finished``.
    """
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


def finish(meta: ExperimentMeta) -> dict[str, Any]:
    trials, history = collect_results(meta)
    write_results(meta, trials, history)
    return {"experiment": meta.path, "trials": trials, "metric": meta.metric, "mode": meta.mode}


def run_search(meta: ExperimentMeta, space: SearchSpace) -> dict[str, Any]:
    """Run a new experiment's search to its end on the Ray that is up (the caller holds the experiment's lock).

    Returns the summary of its results (``finish``).
    """
    from ray import tune

    tuner = tune.Tuner(_trainable(meta), tune_config=tune_config(meta, searcher(meta, space)),
                       run_config=run_config(meta))  # fmt: skip
    with pending_trials(meta.resources, meta.max_concurrent):
        fit(tuner, meta.path, restart=lambda: restored_search(meta))
    return finish(meta)


def restored_search(meta: ExperimentMeta, resume_errored: bool = False):  # noqa: ANN201
    """The search's Tuner restored from its saved state, with this driver's progress lines; its errored trials
    retried with ``resume_errored`` (``motiontune resume``), else left errored (a restart after a memory kill)."""
    from ray import tune

    from tuner.experiment.finished import read_record
    from tuner.search.progress import fresh_callbacks

    finished = frozenset(read_record(meta.path))  # ended after the last state save: not trained again
    tuner = tune.Tuner.restore(meta.path, trainable=_trainable(meta, finished), resume_unfinished=True,
                               resume_errored=resume_errored)  # fmt: skip
    fresh_callbacks(tuner, run_config(meta).callbacks)  # this driver's progress lines
    return tuner


def resume_search(meta: ExperimentMeta, experiment_dir: str, address: str | None,
                  shared_storage: bool) -> dict[str, Any]:  # fmt: skip
    """Start Ray and finish an interrupted search where it stopped (the caller holds the experiment's lock).

    ``Tuner.restore`` gets the trainable again (``train_trial``, bound to this experiment's base config and
    space); this driver's progress callbacks replace the ones the experiment state holds.
    """
    n_nodes = init_ray(address)
    from ray import tune

    if not tune.Tuner.can_restore(meta.path):
        raise ExperimentError(f"{experiment_dir}: holds no Ray Tune experiment state to resume from")
    check_storage(meta.storage, n_nodes, shared_storage)
    tuner = restored_search(meta, resume_errored=True)
    with pending_trials(meta.resources, meta.max_concurrent):
        fit(tuner, meta.path, restart=lambda: restored_search(meta))
    return finish(meta)
