"""Does suggesting one trial ahead cost TPE search quality? The sweep's searcher with and without the prefetch.

``tuner.search.tpe_search.TPESearch`` prepares the next suggestion on a thread as soon as it hands one out, in
sweeps of ``PREFETCH_MIN_SAMPLES`` or more: that suggestion has not seen the trials that ended while it waited.
Here both forms run the same asynchronous protocol a sweep does, without Ray: ``--in-flight`` trials at once;
each step the oldest running trial ends (told its objective) and a new one is suggested; with the prefetch, that
suggestion was drawn before the trial ended (the worst case: in a sweep the draw can also finish later). The
objective is a function of the default space's params as the sweep's TPE draws them (the default space's
define-by-run, the sweep's TPE, windowed past 250 trials), shifted so that its minimum lies inside the space:
``sum((u_i - t_i)^2)`` over the params mapped to [0, 1] (log scale where the space is), ``t_i`` drawn per seed.

Printed per form, over ``--seeds`` seeds: the best value after 25%, 50% and all of ``--trials`` trials, mean and
sd, and the ratio prefetch / no prefetch (1.0: the same quality; below 1: better).

    python benchmarks/prefetch_quality.py                 # 400 trials, 20 in flight, 3 seeds
    python benchmarks/prefetch_quality.py --trials 300 --seeds 5
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from collections import deque

import optuna


def target(seed: int, names: list[str]) -> dict[str, float]:
    rng = random.Random(seed)
    return {n: rng.uniform(0.1, 0.9) for n in names}


def unit(value: float, dist: optuna.distributions.BaseDistribution) -> float:
    """The param's place in its distribution, 0 to 1 (log scale where the distribution is)."""
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return dist.choices.index(value) / max(1, len(dist.choices) - 1)
    low, high, v = float(dist.low), float(dist.high), float(value)
    if getattr(dist, "log", False):
        low, high, v = math.log(low), math.log(high), math.log(v)
    return (v - low) / (high - low) if high > low else 0.5


def run(seed: int, trials: int, in_flight: int, prefetch: bool) -> tuple[list[float], float]:
    from search_spaces.define import define_by_run
    from search_spaces.spec import load_space
    from tuner.search.sampler import tpe_sampler
    from tuner.search.tpe_search import TPESearch

    space = load_space("default")
    search = TPESearch(define_by_run(space), metric="loss", mode="min", sampler=tpe_sampler(seed, trials),
                       prefetch_until=trials if prefetch else 0)  # fmt: skip
    goal: dict[str, float] | None = None
    running: deque[tuple[str, dict]] = deque()
    dists: dict[str, optuna.distributions.BaseDistribution] = {}
    best: list[float] = []
    t0 = time.perf_counter()
    for i in range(trials + in_flight):
        if len(running) == in_flight or i >= trials:
            if not running:
                break
            done, config = running.popleft()
            if any(k not in dists for k in config):
                for t in search.study.get_trials(deepcopy=False):
                    dists.update(t.distributions)
            params = {k: unit(v, dists[k]) for k, v in config.items()}
            goal = goal or target(seed, sorted(params))
            value = sum((params[k] - goal.get(k, 0.5)) ** 2 for k in params) / max(1, len(params))
            search.on_trial_complete(done, {"loss": value})
            best.append(min(value, best[-1]) if best else value)
        if i < trials:
            running.append((f"t{i}", search.suggest(f"t{i}")))
            if search._ready is not None:  # the worst case: the next suggestion drawn before the next trial ends
                search._ready.result()
    return best, time.perf_counter() - t0


def sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=400)
    ap.add_argument("--in-flight", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    marks = [args.trials // 4, args.trials // 2, args.trials]
    rows: dict[str, list[list[float]]] = {}
    for prefetch in (False, True):
        name = "prefetch" if prefetch else "no prefetch"
        rows[name] = []
        for seed in range(args.seeds):
            best, wall = run(seed, args.trials, args.in_flight, prefetch)
            rows[name].append([best[m - 1] for m in marks])
            print(f"{name:12s} seed {seed}: best after {marks} trials: "
                  + " ".join(f"{best[m - 1]:.4f}" for m in marks) + f"  ({wall:.1f} s)", flush=True)  # fmt: skip
    print(f"\n{args.trials} trials, {args.in_flight} in flight, {args.seeds} seeds; best value (mean +- sd)")
    for k, m in enumerate(marks):
        a = [r[k] for r in rows["no prefetch"]]
        b = [r[k] for r in rows["prefetch"]]
        print(f"after {m:4d}: no prefetch {statistics.mean(a):.4f} +- {sd(a):.4f}; prefetch {statistics.mean(b):.4f} "
              f"+- {sd(b):.4f}; ratio x{statistics.mean(b) / statistics.mean(a):.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
