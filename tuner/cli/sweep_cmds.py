"""``sweep``, ``resume``, ``verify``, ``export`` and ``report``: the Ray Tune side."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _print_sweep_summary(summary: dict[str, Any]) -> None:
    from tuner.experiment.results import finished_trials
    from tuner.experiment.usage import storage_line

    trials = summary["trials"]
    metric, mode = summary["metric"], summary["mode"]
    counts = trials["status"].value_counts().to_dict() if len(trials) else {}
    parts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
    print(f"experiment: {summary['experiment']}")
    print(f"trials: {len(trials)} ({parts})")
    print(storage_line(summary["experiment"]))
    col = f"best/{metric}"
    ok = finished_trials(trials, metric) if len(trials) else trials
    if len(ok):
        best = ok.sort_values(col, ascending=(mode == "min")).iloc[0]
        print(
            f"best: trial {best['trial_id']} {metric} {best[col]:.4f} (epoch {best['best_epoch']} of {best['epochs']})"
        )
    else:
        print("best: none (no trial finished)")
    if summary.get("verification") is not None:
        _print_verification(summary["verification"], summary["experiment"])
    elif len(ok):
        print("unverified: the best above is one seed's value; `motiontune verify` re-trains the finalists")
        print(f"export it: motiontune export {summary['experiment']} --out best.json")


def _exit_code(summary: dict[str, Any]) -> int:
    """0, or ``EXIT_NO_TRIAL_FINISHED`` with one line on stderr when no trial of the search (or, after it, of
    the verification) finished: the first failed trial's error."""
    from tuner.cli.common import EXIT_NO_TRIAL_FINISHED
    from tuner.experiment.results import no_finished_reason

    reason = no_finished_reason(summary["trials"], summary["metric"]) if "trials" in summary else None
    reason = reason or summary.get("verification_failed")
    if reason is None:
        return 0
    print(f"motiontune: error: {reason}", file=sys.stderr)
    return EXIT_NO_TRIAL_FINISHED


def _print_verification(table: Any, experiment: str) -> None:
    """The verified ranking (the report's formatter, so both print the same table), then how to export it."""
    from tuner.report.sweep_report import verification_table

    print(verification_table(table))
    print(f"export the verified winner: motiontune export {experiment} --out best.json")


def _parse_resources(items: list[str] | None) -> dict[str, float]:
    from trainer_core.errors import ConfigError

    out = {}
    for item in items or []:
        name, sep, amount = item.partition("=")
        try:
            out[name.strip()] = float(amount)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise ConfigError(f"--resource {item!r}: must be NAME=AMOUNT, e.g. --resource gpu_like=1")
    return out


def _sweep(a: argparse.Namespace) -> int:
    from tuner.pipeline import SweepOptions, launch

    opts = SweepOptions(
        config=a.config, space=a.space, samples=a.samples, max_concurrent=a.max_concurrent, epochs=a.epochs,
        cpus_per_trial=a.cpus_per_trial, gpus_per_trial=a.gpus_per_trial, scheduler=a.scheduler,
        searcher=a.searcher, metric=a.metric, mode=a.mode, constraints=a.constraint, seed=a.seed,
        storage=a.storage, name=a.name,
        address=a.address, smoke_test=a.smoke_test, optuna_storage=a.optuna_storage,
        shared_storage=a.shared_storage, resources=_parse_resources(a.resource), budget=a.budget,
        warm_start=not a.no_warm_start, grace_period=a.grace_period, verify=not a.no_verify,
        verify_top=a.verify_top, verify_seeds=a.verify_seeds, verify_data=a.verify_data,
        status_every=a.status_every,
    )  # fmt: skip
    summary = launch(opts)
    _print_sweep_summary(summary)
    return _exit_code(summary)


def add_sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="search hyperparameters with Ray Tune (Optuna TPE + ASHA)",
                       description="Launch a sweep, locally or on a Ray cluster.")  # fmt: skip
    p.add_argument("--config", help="base config (default: the packaged exp_phase_mpl.json; warm start)")
    p.add_argument("--space", default="default", help="default, small, wide or a space .json file")
    p.add_argument("--samples", type=int, default=16, help="trials in all (default 16)")
    p.add_argument("--max-concurrent", type=int, help="trials at once (default: as many as resources allow)")
    p.add_argument("--epochs", type=int, help="epochs per trial (default: the config's); ASHA's max_t")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--gpus-per-trial", type=float, default=0.0, help="fractions share a GPU: 0.25 packs four")
    p.add_argument("--scheduler", default="asha", choices=["asha", "fifo"])
    p.add_argument("--searcher", default="optuna", choices=["optuna", "random"])
    p.add_argument("--metric", action="append",
                   help="objective (default: FreeRun/GeoDeg); repeat for a multi-objective sweep, e.g. --metric "
                        "FreeRun/GeoDeg --metric FreeRun/long/FootSkateMS (ASHA stops on the first)")  # fmt: skip
    p.add_argument("--mode", action="append", choices=["min", "max"],
                   help="min or max per --metric, in order (default: min)")  # fmt: skip
    p.add_argument("--constraint", action="append", metavar="METRIC<=VALUE",
                   help="a trial is feasible only if this holds for its best model, e.g. "
                        "'FreeRun/long/DivergedClips<=0' (repeatable); no infeasible trial is exported")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seeds the sampler")
    p.add_argument("--storage", default="results", help="experiment root: a path, or s3://, gs://... for clusters")
    p.add_argument("--name", help="experiment name (default: sweep-<time>)")
    p.add_argument("--address", help="Ray cluster to join (`auto` for the one this node belongs to)")
    p.add_argument(
        "--shared-storage",
        action="store_true",
        help="vouch that a local --storage path is mounted on every node of the cluster",
    )
    p.add_argument(
        "--resource",
        action="append",
        metavar="NAME=AMOUNT",
        help="a custom Ray resource each trial needs, e.g. gpu_like=1 (repeatable)",
    )
    p.add_argument("--optuna-storage", metavar="URL", help="persist the Optuna study, e.g. sqlite:///study.db")
    p.add_argument("--grace-period", type=int, help="ASHA's first rung (default: the base's first free-run epoch)")
    p.add_argument("--budget", type=int, metavar="TRIAL_EPOCHS", help="end the sweep after this many epochs in all")
    p.add_argument("--no-warm-start", action="store_true", help="do not run the base config as the first trial")
    p.add_argument("--smoke-test", action="store_true", help="tiny trials (seconds each) on the small space")
    p.add_argument("--verify-top", type=int, metavar="K",
                   help="after the search, re-train the K best configs and the base config (default 3; 2 with "
                        "--smoke-test)")  # fmt: skip
    p.add_argument(
        "--verify-seeds",
        type=int,
        metavar="S",
        help="fresh seeds per re-trained config, the same for all (default 3; 2 with --smoke-test)",
    )
    p.add_argument(
        "--verify-data",
        metavar="DIR",
        help="also evaluate each re-trained model on this dataset folder (clips no trial trained on)",
    )
    p.add_argument("--no-verify", action="store_true", help="skip the verification: export's pick stays unverified")
    _add_status_every(p, 30.0)
    p.set_defaults(func=_sweep)


def _add_status_every(p: argparse.ArgumentParser, default: float | None) -> None:
    p.add_argument("--status-every", type=float, default=default, metavar="SECONDS",
                   help="print the progress line this often, and on each trial event (default 30; one updating "
                        "line on a terminal, plain lines in a log)")  # fmt: skip


def _resume(a: argparse.Namespace) -> int:
    from tuner.pipeline import resume

    summary = resume(a.experiment, a.address, a.shared_storage, a.status_every)
    _print_sweep_summary(summary)
    return _exit_code(summary)


def _verify(a: argparse.Namespace) -> int:
    from tuner.pipeline import verify_experiment

    summary = verify_experiment(a.experiment, a.top, a.seeds, a.verify_data, a.address, a.shared_storage,
                                a.status_every)
    _print_verification(summary["verification"], summary["experiment"])
    return _exit_code(summary)


def _status(a: argparse.Namespace) -> int:
    from tuner.experiment.status import status_lines

    print("\n".join(status_lines(a.experiment)))
    return 0


def _export_line(rec: dict[str, Any]) -> str:
    if not rec["verified"]:
        return f"rank {rec['rank']}: trial {rec['trial_id']} {rec['metric']} {rec['value']:.4f} -> {rec['config']}"
    v = rec["verification"]
    seeds = len(v["seeds"])
    stat = f"{rec['metric']} {v['mean']:.4f} ± {v['sd']:.4f} over {seeds} fresh seeds"
    if rec["rank"] == 1 and rec["is_base"]:
        return (f"no finalist beats the base config on {seeds} fresh seeds: exported the best, the base config "
                f"itself ({stat}) -> {rec['config']}")  # fmt: skip
    name = "base config" if rec["is_base"] else f"trial {rec['trial_id']}"
    gain = v["improvement"]
    lo, hi = gain["ci95"]
    verdict = "excludes 0" if gain["excludes_zero"] else "includes 0: could be seed luck"
    return (f"verified rank {rec['rank']}: {name} {stat} (search {rec['search_value']:.4f}); base "
            f"{v['base']['mean']:.4f} ± {v['base']['sd']:.4f}; improvement {gain['mean']:+.4f} [{lo:+.4f}, {hi:+.4f}] "
            f"(95% t, {verdict}) -> {rec['config']}")  # fmt: skip


def _export(a: argparse.Namespace) -> int:
    from tuner.report.export import export

    records = export(a.experiment, a.out, a.top, a.metric, a.mode, a.prefer, a.within, a.front)
    for rec in records:
        print(_export_line(rec))
    if "rule" in records[0]:
        print(f"chosen by: {records[0]['rule']} (front of {len(records[0].get('front', []))})")
    if not records[0]["verified"]:
        print(f"unverified: {records[0]['unverified']}")
    return 0


def _report(a: argparse.Namespace) -> int:
    from tuner.report.sweep_report import report

    rep = report(a.experiment, a.out)
    print(rep.summary)
    print(f"\nreport: {rep.out / 'index.html'} ({len(rep.images)} plots)")
    return 0


def add_resume_export(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser(
        "resume",
        help="finish an interrupted sweep (its search, then its verification)",
        description="Resume a sweep: the search, then the verification, keeping finished trials.",
    )
    r.add_argument("experiment", metavar="EXPERIMENT_DIR")
    r.add_argument("--address", help="Ray cluster to join")
    r.add_argument("--shared-storage", action="store_true", help="vouch that the experiment's path is on every node")
    _add_status_every(r, None)
    r.set_defaults(func=_resume)
    st = sub.add_parser("status", help="where a running or stopped sweep stands (its last progress line)",
                        description="Print a sweep's last progress line (search and verification) from its "
                                    "experiment folder, from any machine that sees the storage.")  # fmt: skip
    st.add_argument("experiment", metavar="EXPERIMENT_DIR")
    st.set_defaults(func=_status)
    e = sub.add_parser("export", help="the best trial's config, as JSON the trainer runs",
                       description="Export the best config(s) of a sweep.")  # fmt: skip
    e.add_argument("experiment", metavar="EXPERIMENT_DIR")
    e.add_argument("--out", help="config path (default: EXPERIMENT_DIR/best_config.json)")
    e.add_argument("--top", type=int, default=1, help="export the K best (as NAME.top1.json ...)")
    e.add_argument("--metric", help="rank by this metric (default: the sweep's)")
    e.add_argument("--mode", choices=["min", "max"])
    e.add_argument("--prefer", metavar="METRIC",
                   help="a multi-objective sweep: export the config best on this objective, among those --within "
                        "allows")  # fmt: skip
    e.add_argument("--within", action="append", metavar="METRIC=5%",
                   help="with --prefer: only configs whose METRIC is within 5%% of the base config's (or within an "
                        "absolute bound, METRIC=6.6); repeatable")  # fmt: skip
    e.add_argument("--front", action="store_true",
                   help="a multi-objective sweep: export every config on the (verified) front, as NAME.front1.json ...")
    e.set_defaults(func=_export)
    v = sub.add_parser("verify", help="re-train a sweep's finalists and its base config on fresh seeds",
                       description="Verify a finished sweep: re-train its K best configs and the base config on S "
                                   "fresh seeds (the same for all), as Ray Tune trials; writes verification.parquet "
                                   "and export then writes the verified winner.")  # fmt: skip
    v.add_argument("experiment", metavar="EXPERIMENT_DIR")
    v.add_argument("--top", type=int, metavar="K", help="finalists besides the base config (default 3)")
    v.add_argument("--seeds", type=int, metavar="S", help="fresh seeds per config (default 3)")
    v.add_argument("--verify-data", metavar="DIR", help="also evaluate each re-trained model on this dataset folder")
    v.add_argument("--address", help="Ray cluster to join")
    v.add_argument("--shared-storage", action="store_true", help="vouch that the experiment's path is on every node")
    _add_status_every(v, None)
    v.set_defaults(func=_verify)
    rp = sub.add_parser("report", help="plots, index.html and a summary of a sweep",
                        description="Report on a sweep: PNG plots, an index.html and a terminal summary.")  # fmt: skip
    rp.add_argument("experiment", metavar="EXPERIMENT_DIR")
    rp.add_argument("--out", help="folder for the report (default: EXPERIMENT_DIR/report)")
    rp.set_defaults(func=_report)


# --- generate / export-model / preview ----------------------------------------------------
