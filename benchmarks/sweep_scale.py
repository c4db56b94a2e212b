"""A sweep of many trials through motiontune's own path, with a trainable whose epoch is a fixed sleep.

What is measured is everything but the training: the define-by-run space (``--space``, default: the default
space) sampled by the sweep's TPE, warm-started with the base config; ASHA; the ConcurrencyLimiter with
``--max-concurrent`` (without it, as a user leaves it, the CPUs bound the trials at once); a report per epoch;
the progress callback (its lines go to ``progress.log``); the record of finished trials
(``finished_trials.jsonl``, a line per trial as it ends); the results collected into
``trials.parquet`` and ``history.parquet``. The searcher, the scheduler, the Tune and run configs are the ones
``motiontune sweep`` builds (``tuner.search.sweep``); only the trainable is replaced: each epoch sleeps ``--sleep``
seconds and reports an objective computed from the params (so TPE and ASHA have something to work on). Each
trial asks ``--cpus-per-trial`` CPUs (a fraction), so many run at once on this machine's CPUs.

Printed: the wall time of the search against its theoretical minimum (trial-epochs x sleep / slots, for the
epochs ASHA let run, and for all of them), the overhead per trial, the searcher's suggest time (and its
update when a trial ends) for the first and the last 100 trials, and the time to collect the results.

The baseline, run first in the same process and Ray session: Ray Tune alone with the same trainable, resources,
trial count and ASHA, but Tune's random search, its default callbacks and its own experiment-state period.
What Ray costs per trial on this machine, and the ratio of motiontune's path to it. Run::

    python benchmarks/sweep_scale.py                 # 1,000 trials
    python benchmarks/sweep_scale.py --trials 100    # the quick form
    python benchmarks/sweep_scale.py --no-baseline   # motiontune's path only
    python benchmarks/sweep_scale.py --searcher random   # motiontune's path without TPE's cost
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def sleep_trial(config: dict[str, Any], *, epochs: int, sleep: float, metric: str) -> None:
    """Each epoch: sleep, then report an objective that depends on the params and improves with the epoch."""
    from ray import tune

    numbers = [float(v) for _, v in sorted(config.items()) if isinstance(v, (int, float)) and not isinstance(v, bool)]
    score = sum(abs(math.log10(abs(v))) if v else 0.0 for v in numbers) % 5.0 + 5.0
    start = time.time()
    for epoch in range(1, epochs + 1):
        time.sleep(sleep)
        tune.report({metric: score * (1 + 1 / epoch), "epoch": epoch, "diverged": 0, "trial_start": start,
                     "report_time": time.time(), "pid": os.getpid()})  # fmt: skip


TIMES: dict[str, list[float]] = {"suggest": [], "suggest_cpu": [], "draw_cpu": [], "complete_cpu": []}


def timed(searcher: Any) -> None:
    """Make ``searcher`` (``tuner.search.tpe_search.TPESearch``) record into ``TIMES``: how long Tune's ``suggest``
    calls take in the driver loop (wall, and CPU of the driver's thread), the CPU each TPE draw takes (``_ask``, on
    whichever thread it runs: the driver's, or the prefetch thread in a sweep that suggests ahead), and the CPU its
    trial completions (TPE's ``tell``) take. A subclass, so Tune can still pickle it."""
    base = type(searcher)

    class Timed(base):  # type: ignore[misc, valid-type]
        def suggest(self, trial_id: str) -> Any:
            t, c = time.perf_counter(), time.thread_time()
            out = super().suggest(trial_id)
            if isinstance(out, dict):
                TIMES["suggest"].append(time.perf_counter() - t)
                TIMES["suggest_cpu"].append(time.thread_time() - c)
            return out

        def _ask(self) -> Any:
            c = time.thread_time()
            out = super()._ask()
            TIMES["draw_cpu"].append(time.thread_time() - c)
            return out

        def on_trial_complete(self, trial_id: str, *args: Any, **kwargs: Any) -> Any:
            c = time.thread_time()
            out = super().on_trial_complete(trial_id, *args, **kwargs)
            TIMES["complete_cpu"].append(time.thread_time() - c)
            return out

    Timed.__qualname__ = Timed.__name__ = f"Timed{base.__name__}"
    globals()[Timed.__name__] = Timed  # picklable by name
    searcher.__class__ = Timed


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.mean(values) * 1e3:6.1f} ms mean, {max(values) * 1e3:6.1f} ms max"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=4, help="epochs per trial (ASHA's max_t)")
    ap.add_argument("--sleep", type=float, default=1.0, help="seconds per epoch")
    ap.add_argument("--cpus-per-trial", type=float, default=0.1)
    ap.add_argument("--space", default="default")
    ap.add_argument("--searcher", default="optuna", choices=("optuna", "random"),
                    help="the sweep's --searcher (random: Optuna's random sampler, to tell TPE's share)")  # fmt: skip
    ap.add_argument("--max-concurrent", type=int, help="the sweep's --max-concurrent (default: none, as a user "
                    "leaves it: the CPUs bound the trials at once)")  # fmt: skip
    ap.add_argument("--no-baseline", action="store_true", help="skip Ray Tune alone (run first, as the baseline)")
    ap.add_argument("--out", type=Path, help="experiment root (default: a temp dir, removed at the end)")
    args = ap.parse_args()

    import ray

    root = args.out or Path(tempfile.mkdtemp(prefix="sweep_scale_"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        run(args, root)
    finally:
        ray.shutdown()  # also on failure: a driver that dies leaves its raylet spawning idle workers
        if args.out is None:
            shutil.rmtree(root, ignore_errors=True)


def run(args: argparse.Namespace, root: Path) -> None:
    import ray
    from ray import tune

    from search_spaces.spec import space_from_dict
    from tuner.experiment.results import collect_results, write_results
    from tuner.pipeline import SweepOptions, prepare
    from tuner.search.pending import pending_trials
    from tuner.search.sweep import init_ray, run_config, searcher, tune_config
    from tuner.search.tpe_search import PREFETCH_MIN_SAMPLES

    for attempt in range(3):  # on a loaded machine Ray's raylet can give up waiting for its dashboard agent
        try:
            init_ray(None)
            break
        except Exception as e:  # noqa: BLE001 - Ray raises a bare Exception for it
            if "timed out during startup" not in str(e) or attempt == 2:
                raise
            print(f"Ray did not start ({e}); trying again", flush=True)
            ray.shutdown()
    cpus = ray.cluster_resources().get("CPU", 1)
    slots = int(cpus / args.cpus_per_trial + 1e-9)
    slots = min(slots, args.max_concurrent or slots)
    opts = SweepOptions(space=args.space, samples=args.trials, max_concurrent=args.max_concurrent,
                        cpus_per_trial=args.cpus_per_trial, searcher=args.searcher,
                        storage=str(root), name="scale", grace_period=1, verify=False, status_every=30)  # fmt: skip
    meta = prepare(opts)  # the base config as it is, so it is a point of the space: TPE's warm start
    meta.epochs = args.epochs  # ASHA's max_t: the sleeping trainable's epochs
    meta.save()
    fn = tune.with_parameters(sleep_trial, epochs=args.epochs, sleep=args.sleep, metric=meta.metric)
    base = None if args.no_baseline else ray_tune_alone(args, root, meta, fn, slots)
    search_alg = searcher(meta, space_from_dict(meta.space, "space"))
    timed(getattr(search_alg, "searcher", search_alg))  # the TPESearch inside the ConcurrencyLimiter
    tuner = tune.Tuner(tune.with_resources(fn, dict(meta.resources)), tune_config=tune_config(meta, search_alg),
                       run_config=run_config(meta))  # fmt: skip
    with open(root / "progress.log", "w") as log, contextlib.redirect_stdout(log):
        with pending_trials(meta.resources, meta.max_concurrent) as pending:  # as `motiontune sweep` runs it
            t0 = time.perf_counter()
            grid = tuner.fit()
            wall = time.perf_counter() - t0
    processes = _processes(grid)
    t1 = time.perf_counter()
    trials, history = collect_results(meta)
    write_results(meta, trials, history)
    collect = time.perf_counter() - t1

    ran = int(trials["epochs"].sum())
    minimum = ran * args.sleep / slots
    nominal = args.trials * args.epochs * args.sleep / slots
    counts = trials["status"].value_counts().to_dict()
    per_trial_ms = _per_trial_ms(wall, minimum, slots, args.trials)
    s, cpu, c, draw = TIMES["suggest"], TIMES["suggest_cpu"], TIMES["complete_cpu"], TIMES["draw_cpu"]
    result = {
        "trials": args.trials, "searcher": args.searcher, "epochs": args.epochs, "sleep_s": args.sleep, "cpus": cpus,
        "cpus_per_trial": args.cpus_per_trial, "slots": slots, "max_concurrent": args.max_concurrent,
        "worker_processes": processes, "pending_trials": pending, "trial_epochs_run": ran, "status": counts,
        "wall_s": round(wall, 2), "minimum_s": round(minimum, 2),
        "over_minimum_pct": round(100 * (wall / minimum - 1), 1),
        "nominal_minimum_s": round(nominal, 2), "overhead_per_trial_slot_ms": round(per_trial_ms, 1),
        "suggest_first100_ms": round(statistics.mean(s[:100]) * 1e3, 2) if s else None,
        "suggest_last100_ms": round(statistics.mean(s[-100:]) * 1e3, 2) if s else None,
        "suggest_last100_max_ms": round(max(s[-100:]) * 1e3, 2) if s else None,
        "suggest_cpu_first100_ms": round(statistics.mean(cpu[:100]) * 1e3, 2) if cpu else None,
        "suggest_cpu_last100_ms": round(statistics.mean(cpu[-100:]) * 1e3, 2) if cpu else None,
        "draw_cpu_first100_ms": round(statistics.mean(draw[:100]) * 1e3, 2) if draw else None,
        "draw_cpu_last100_ms": round(statistics.mean(draw[-100:]) * 1e3, 2) if draw else None,
        "complete_first100_ms": round(statistics.mean(c[:100]) * 1e3, 2) if c else None,
        "complete_last100_ms": round(statistics.mean(c[-100:]) * 1e3, 2) if c else None,
        "collect_s": round(collect, 2), "load_1m": round(os.getloadavg()[0], 1), "baseline": base,
    }  # fmt: skip
    if base:
        print(f"Ray Tune alone (random search, the same ASHA, Tune's defaults), run first: {base['wall_s']:.1f} s "
              f"against a minimum of {base['minimum_s']:.1f} s ({base['over_minimum_pct']:+.1f} %), "
              f"{base['trial_epochs_run']} trial-epochs in {base['worker_processes']} worker processes, "
              f"{base['overhead_per_trial_slot_ms']:.1f} ms of a slot per trial")  # fmt: skip
    print(f"{args.trials} trials x up to {args.epochs} epochs of {args.sleep:g} s, {args.cpus_per_trial:g} CPU each: "
          f"{slots} slots on {cpus:g} CPUs; ASHA: {counts}")  # fmt: skip
    print(f"trial-epochs run {ran} of {args.trials * args.epochs}; the trials ran in {processes} worker processes"
          f" (--max-concurrent {args.max_concurrent or 'not given'}; pending trials at once: "
          f"{pending or os.environ.get('TUNE_MAX_PENDING_TRIALS_PG', 'Tune decides')})")  # fmt: skip
    print(f"search wall time       {wall:8.1f} s")
    print(f"theoretical minimum    {minimum:8.1f} s  (epochs run x sleep / slots); {nominal:.1f} s for every epoch")
    print(f"over the minimum       {100 * (wall / minimum - 1):8.1f} %")
    print(f"overhead per trial     {per_trial_ms:8.1f} ms of a slot  ((wall - minimum) x slots / trials)")
    print(f"suggest, first 100     {_ms(s[:100])}; CPU {_ms(cpu[:100])}")
    print(f"suggest, last 100      {_ms(s[-100:])}; CPU {_ms(cpu[-100:])}")
    print(f"TPE draw, CPU: first 100 {_ms(draw[:100])}; last 100 {_ms(draw[-100:])}  (prepared ahead on a thread "
          f"from {PREFETCH_MIN_SAMPLES} samples on)")
    print(f"trial end (TPE tell), CPU: first 100 {_ms(c[:100])}; last 100 {_ms(c[-100:])}")
    load = os.getloadavg()
    print(f"machine load (1, 5, 15 min) at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, {os.cpu_count()} cores")
    print(f"results collection     {collect:8.1f} s  (trials.parquet, history.parquet: {len(history)} rows)")
    if base:
        alone = base["overhead_per_trial_slot_ms"]
        ratio = per_trial_ms / alone if alone > 0 else math.nan
        print(f"against Ray Tune alone: overhead per trial x{ratio:.2f}; over the minimum "
              f"{100 * (wall / minimum - 1):+.1f} % against {base['over_minimum_pct']:+.1f} %")  # fmt: skip
    print("json " + json.dumps(result))


def ray_tune_alone(args: argparse.Namespace, root: Path, meta: Any, fn: Any, slots: int) -> dict[str, Any]:
    """The baseline: the same trainable, resources, trial count and ASHA through Ray Tune with nothing of ours
    (random search, Tune's default callbacks and experiment-state period, no checkpoint or failure config)."""
    from ray import tune

    from tuner.search.sweep import scheduler

    period = os.environ.pop("TUNE_GLOBAL_CHECKPOINT_S", None)  # Tune's own ("auto"), read when fit starts
    try:
        tuner = tune.Tuner(
            tune.with_resources(fn, dict(meta.resources)),
            param_space={"lr": tune.loguniform(1e-4, 1e-3), "batch": tune.choice([8, 16, 32])},
            tune_config=tune.TuneConfig(
                metric=meta.metric,
                mode=meta.mode,
                scheduler=scheduler(meta),
                num_samples=args.trials,
                reuse_actors=True,
                max_concurrent_trials=args.max_concurrent,
            ),  # fmt: skip
            run_config=tune.RunConfig(name="ray_tune_alone", storage_path=str(root), verbose=0),
        )
        t0 = time.perf_counter()
        grid = tuner.fit()
        wall = time.perf_counter() - t0
    finally:
        if period is not None:
            os.environ["TUNE_GLOBAL_CHECKPOINT_S"] = period
    if grid.num_errors:
        raise RuntimeError(f"the baseline had {grid.num_errors} failed trials")
    ran = sum(int(r.metrics.get("training_iteration", 0)) for r in grid)
    minimum = ran * args.sleep / slots
    return {"wall_s": round(wall, 2), "minimum_s": round(minimum, 2), "trial_epochs_run": ran,
            "over_minimum_pct": round(100 * (wall / minimum - 1), 1), "worker_processes": _processes(grid),
            "overhead_per_trial_slot_ms": round(_per_trial_ms(wall, minimum, slots, args.trials), 1)}  # fmt: skip


def _processes(grid: Any) -> int:
    """How many worker processes the trials ran in (each reports its pid)."""
    return len({r.metrics.get("pid") for r in grid} - {None})


def _per_trial_ms(wall: float, minimum: float, slots: int, trials: int) -> float:
    """What each trial cost beyond its sleeps, in ms of one slot: (wall - minimum) x slots / trials."""
    return (wall - minimum) * slots / trials * 1e3


if __name__ == "__main__":
    main()
