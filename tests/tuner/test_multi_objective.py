"""Multi-objective sweeps: the front, constraints, the verification along the front, the export rule.

Hand-checked sets first (the Pareto mask, the export rule), then one real multi-objective smoke sweep with its
verification (Ray Tune + Optuna's multi-objective TPE on the real mocap), whose tables, export and report are
checked against what they should hold.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from tests.conftest import run_cli
from tests.trainer_core.test_bad_inputs import assert_refused
from trainer_core.errors import ConfigError
from tuner.experiment.files import ExperimentError
from tuner.experiment.objectives import Constraint, Objective, objectives_from_options, pareto_mask, spread
from tuner.experiment.results import AT_BEST, with_front
from tuner.report.preference import Within, choose

FOOT = "FreeRun/long/FootSkateMS"
GEO = "FreeRun/GeoDeg"
DIVERGED = "FreeRun/long/DivergedClips"


# --- hand-checked --------------------------------------------------------------------------------------------


def test_pareto_mask_on_a_hand_checked_set():
    points = np.array([
        [1.0, 5.0],  # 0 front: best on the first objective
        [2.0, 3.0],  # 1 front
        [3.0, 3.0],  # 2 dominated by 1 (equal second, worse first)
        [4.0, 1.0],  # 3 front: best on the second
        [2.0, 3.0],  # 4 equal to 1: neither dominates the other, both on the front
        [5.0, 5.0],  # 5 dominated by all
        [0.5, np.nan],  # 6 no value: never on the front
        [0.1, 0.1],  # 7 would dominate everything, but infeasible
    ])  # fmt: skip
    feasible = np.array([True] * 7 + [False])
    assert pareto_mask(points, ["min", "min"], feasible).tolist() == [
        True, True, False, True, True, False, False, False]  # fmt: skip
    # maximising the second objective turns the order around: (1, 5) and (5, 5)... (5, 5) is dominated by
    # nothing that is better on the first with 5 on the second, so (1, 5) alone wins the first and the second
    assert pareto_mask(points, ["min", "max"], feasible).tolist() == [
        True, False, False, False, False, False, False, False]  # fmt: skip
    assert pareto_mask(points[:6], ["max", "max"]).tolist() == [False, False, False, False, False, True]


def test_spread_picks_both_ends_then_between():
    assert spread(10, 3) == [0, 4, 9] or spread(10, 3) == [0, 5, 9]
    assert spread(10, 2) == [0, 9]
    assert spread(3, 5) == [0, 1, 2]
    assert spread(7, 1) == [0]


def test_constraint_parsing_and_violation():
    c = Constraint.parse(f"{DIVERGED}<=0", [DIVERGED])
    assert (c.metric, c.op, c.bound) == (DIVERGED, "<=", 0.0)
    assert c.violation(0) == 0 and c.violation(2) == 2 and c.violation(math.nan) > 0
    g = Constraint.parse(f"{GEO} >= 1.5", [GEO])
    assert g.violation(2.0) == -0.5 and g.violation(1.0) == 0.5
    for bad in (f"{DIVERGED}<0", f"{DIVERGED}==0", "<=3", f"{DIVERGED}<=x"):
        with pytest.raises(ConfigError, match="must be METRIC<=VALUE or METRIC>=VALUE"):
            Constraint.parse(bad, [DIVERGED])
    with pytest.raises(ConfigError, match="not a metric the trainer reports"):
        Constraint.parse("FreeRun/long/FootSkate<=1", [FOOT])


def test_objectives_from_options():
    known = [GEO, FOOT, "GeoDeg"]
    assert objectives_from_options([GEO, FOOT], [], known, "min") == [Objective(GEO, "min"), Objective(FOOT, "min")]
    assert objectives_from_options([GEO, FOOT], ["min", "max"], known, "min")[1] == Objective(FOOT, "max")
    with pytest.raises(ConfigError, match="--mode is given 1 time"):
        objectives_from_options([GEO, FOOT], ["min"], known, "min")
    with pytest.raises(ConfigError, match="given twice"):
        objectives_from_options([GEO, GEO], [], known, "min")


def _trials() -> pd.DataFrame:
    """Five finished trials and one still running: (GeoDeg at the best epoch, foot skate at that epoch, diverged)."""
    rows = [("a", 6.0, 1.2, 0, True), ("b", 6.2, 0.8, 0, False), ("c", 6.5, 0.4, 2, False),
            ("d", 6.9, 0.5, 0, False), ("e", 6.3, 0.9, 0, False), ("f", 5.0, 0.1, 0, False)]  # fmt: skip
    return pd.DataFrame({
        "trial_id": [r[0] for r in rows],
        "status": ["COMPLETED"] * 4 + ["STOPPED", "RUNNING"],
        f"best/{GEO}": [r[1] for r in rows],
        f"{AT_BEST}{FOOT}": [r[2] for r in rows],
        f"{AT_BEST}{DIVERGED}": [r[3] for r in rows],
        "warm_start": [r[4] for r in rows],
    })  # fmt: skip


def test_with_front_respects_constraints_and_unfinished_trials():
    objectives = [Objective(GEO, "min"), Objective(FOOT, "min")]
    out = with_front(_trials(), objectives, [Constraint.parse(f"{DIVERGED}<=0")])
    # c (diverged clips) is infeasible and f is still running: neither is on the front, though both would be
    assert out["feasible"].tolist() == [True, True, False, True, True, False]
    assert out.set_index("trial_id")["pareto"].to_dict() == {
        "a": True, "b": True, "c": False, "d": True, "e": False, "f": False}  # fmt: skip
    unconstrained = with_front(_trials(), objectives, [])
    assert unconstrained.set_index("trial_id")["pareto"]["c"]  # without the constraint, c is on the front


def test_the_export_rule_prefers_within_the_bound():
    objectives = [Objective(GEO, "min"), Objective(FOOT, "min")]
    t = with_front(_trials(), objectives, [Constraint.parse(f"{DIVERGED}<=0")])
    t = t[t["feasible"]]
    values = {GEO: f"best/{GEO}", FOOT: f"{AT_BEST}{FOOT}"}
    base = {GEO: 6.0, FOOT: 1.2}
    # within 5% of the base's 6.0: GeoDeg <= 6.3, so a, b and e; the lowest foot skate of those is b (0.8)
    i, rule = choose(t, values, base, objectives[1], [Within.parse(f"{GEO}=5%", objectives)], objectives)
    assert t.loc[i, "trial_id"] == "b"
    assert "FreeRun/GeoDeg <= 6.3000 (within 5% of the base's 6.0000)" in rule
    # 20% allows d (6.9 > 7.2? no: 6.0 * 1.2 = 7.2 >= 6.9), whose 0.5 beats b; c (0.4) is infeasible, never chosen
    i, _ = choose(t, values, base, objectives[1], [Within.parse(f"{GEO}=20%", objectives)], objectives)
    assert t.loc[i, "trial_id"] == "d"
    i, _ = choose(t, values, base, objectives[1], [Within.parse(f"{GEO}=6.25", objectives)], objectives)
    assert t.loc[i, "trial_id"] == "b"  # an absolute bound
    with pytest.raises(ExperimentError, match="no config meets the export rule"):
        choose(t, values, base, objectives[1], [Within.parse(f"{GEO}=5.5", objectives)], objectives)
    with pytest.raises(ConfigError, match="not an objective of this sweep"):
        Within.parse("GeoDeg=5%", objectives)


def _x_space(trial):
    trial.suggest_float("x", 0, 1)


def test_a_constraint_reaches_optunas_tpe(tmp_path):
    """Through ``TPESearch``, Optuna records each told trial's constraint values (public
    ``FrozenTrial.system_attrs`` of a study in public storage): a change in Ray or Optuna that stops them reaching
    TPE fails here."""
    import optuna

    from tuner.search.multi import FeasibilityFromResult, tpe_with_constraints
    from tuner.search.tpe_search import TPESearch

    feasibility = FeasibilityFromResult([Constraint.parse(f"{DIVERGED}<=0")])
    storage = f"sqlite:///{tmp_path}/s.db"
    search = TPESearch(_x_space, metric=[GEO, FOOT], mode=["min", "min"],
                       sampler=tpe_with_constraints(0, 4, feasibility, windowed=False),
                       storage=optuna.storages.RDBStorage(storage), study_name="s", feasibility=feasibility)
    for i, diverged in enumerate([0, 3]):
        search.suggest(f"t{i}")
        search.on_trial_complete(f"t{i}", {GEO: 6.0 + i, FOOT: 1.0 - i / 10, DIVERGED: diverged})
    trials = optuna.load_study(study_name="s", storage=storage).trials
    assert [t.values for t in trials] == [[6.0, 1.0], [7.0, 0.9]]
    assert [list(t.system_attrs.get("constraints", [])) for t in trials] == [[0.0], [3.0]]
    assert feasibility.result is None  # handed over for the tell only


def test_a_trial_stopped_before_an_objective_was_measured_is_told_as_pruned(tmp_path, caplog):
    """ASHA can stop a trial before its first long-horizon validation: its foot skate is NaN. Optuna refuses such
    a tell (the trial stayed RUNNING in the study for good, and Ray logged a bare "The value nan is not acceptable");
    it is told as PRUNED, with its constraint recorded, and a trial with every value is COMPLETE."""
    import optuna

    from tuner.search.multi import FeasibilityFromResult, tpe_with_constraints
    from tuner.search.tpe_search import TPESearch

    storage = f"sqlite:///{tmp_path}/s.db"
    for name, feasibility in (("c", FeasibilityFromResult([Constraint.parse(f"{DIVERGED}<=0")])), ("n", None)):
        search = TPESearch(_x_space, metric=[GEO, FOOT], mode=["min", "min"],
                           sampler=tpe_with_constraints(0, 4, feasibility, windowed=False),
                           storage=optuna.storages.RDBStorage(storage), study_name=name, feasibility=feasibility)
        for i, foot in enumerate([math.nan, None, 0.5]):
            search.suggest(f"t{i}")
            result = {GEO: 7.0 + i, DIVERGED: 0, **({FOOT: foot} if foot is not None else {})}
            with caplog.at_level("WARNING"):
                search.on_trial_complete(f"t{i}", result)
        trials = optuna.load_study(study_name=name, storage=storage).trials
        assert [t.state.name for t in trials] == ["PRUNED", "PRUNED", "COMPLETE"], name
        assert trials[2].values == [9.0, 0.5]
        if feasibility is not None:
            assert [list(t.system_attrs.get("constraints", [])) for t in trials] == [[0.0]] * 3
    assert "not acceptable" not in caplog.text


# --- a real multi-objective sweep ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mo_sweep(tmp_path_factory):
    """A real multi-objective smoke sweep: FreeRun/GeoDeg and the 5 s foot skate, one constraint, verification of
    2 points of the front and the base on 2 seeds."""
    root = tmp_path_factory.mktemp("mo")
    proc = run_cli("sweep", "--smoke-test", "--samples", "5", "--max-concurrent", "2", "--epochs", "3",
                   "--metric", GEO, "--metric", FOOT, "--constraint", f"{DIVERGED}<=0", "--verify-top", "2",
                   "--verify-seeds", "2", "--storage", str(root), "--name", "mo", "--status-every", "5",
                   cwd=root)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    return root / "mo", proc


def test_the_sweep_records_every_objective_and_its_front(mo_sweep):
    exp, proc = mo_sweep
    meta = json.loads((exp / "motiontune.json").read_text())
    assert (meta["metric"], meta["extra_objectives"], meta["constraints"]) == (GEO, {FOOT: "min"}, [f"{DIVERGED}<=0"])
    trials = pd.read_parquet(exp / "trials.parquet")
    assert len(trials) == 5 and {"pareto", "feasible", f"{AT_BEST}{FOOT}", f"final/{FOOT}"} <= set(trials.columns)
    ok = trials[trials["status"].isin(["COMPLETED", "STOPPED"])]
    assert ok[f"{AT_BEST}{FOOT}"].notna().all() and (ok[f"{AT_BEST}{FOOT}"] > 0).all()
    # the front recomputed by hand: a finished feasible trial no other beats on both
    pts = ok[[f"best/{GEO}", f"{AT_BEST}{FOOT}"]].to_numpy()
    for (_, row), p in zip(ok.iterrows(), pts):
        dominated = any((q <= p).all() and (q < p).any() for q in pts)
        assert bool(row["pareto"]) == (not dominated and bool(row["feasible"]))
    assert trials["pareto"].sum() >= 1
    assert f"| front {int(trials['pareto'].sum())} (" in proc.stdout  # the progress line speaks of the front
    status = run_cli("status", str(exp))
    assert "front " in status.stdout and "long/FootSkateMS" in status.stdout


def test_the_verification_retrains_points_of_the_front_and_scores_every_objective(mo_sweep):
    exp, _ = mo_sweep
    trials = pd.read_parquet(exp / "trials.parquet").set_index("trial_id")
    plan = json.loads((exp / "verification_plan.json").read_text())
    finalists = [f["trial_id"] for f in plan["finalists"] if f["label"] != "base"]
    assert finalists and all(trials.loc[t, "pareto"] for t in finalists)
    assert plan["objectives"] == {FOOT: "min"}
    table = pd.read_parquet(exp / "verification.parquet")
    assert {"pareto", "feasible", f"{AT_BEST}{FOOT}/mean", f"{AT_BEST}{FOOT}/improvement_lo"} <= set(table.columns)
    for _, r in table.iterrows():
        assert r[f"{AT_BEST}{FOOT}/mean"] == pytest.approx(np.mean(r[f"{AT_BEST}{FOOT}/values"]))
    assert table["pareto"].any()


def test_export_by_preference_and_the_front(mo_sweep, tmp_path):
    exp, _ = mo_sweep
    table = pd.read_parquet(exp / "verification.parquet")
    base = table[table["is_base"]].iloc[0]
    proc = run_cli("export", str(exp), "--prefer", FOOT, "--within", f"{GEO}=5%", "--out", str(tmp_path / "p.json"))
    assert proc.returncode == 0, proc.stderr
    rec = json.loads((tmp_path / "p.provenance.json").read_text())
    limit = base["best_mean"] * 1.05
    allowed = table[table["feasible"] & (table["best_mean"] <= limit)]
    want = allowed.loc[allowed[f"{AT_BEST}{FOOT}/mean"].idxmin(), "label"]
    assert rec["label"] == want and rec["verified"]
    assert rec["rule"].startswith(f"lowest {FOOT} among the feasible configs with {GEO} <= ")
    assert len(rec["front"]) == int(table["pareto"].sum())
    assert rec["objectives"][FOOT]["value"] == pytest.approx(float(allowed.set_index("label").loc[want,
                                                                       f"{AT_BEST}{FOOT}/mean"]))  # fmt: skip
    front = run_cli("export", str(exp), "--front", "--out", str(tmp_path / "f.json"))
    assert front.returncode == 0, front.stderr
    written = sorted(p.name for p in tmp_path.glob("f.front*.json") if "provenance" not in p.name)
    assert len(written) == int(table["pareto"].sum())


def test_an_infeasible_trial_is_never_exported(mo_sweep, tmp_path):
    """The same sweep with a constraint that the best trials break (set afterwards in its motiontune.json; the
    tables are rebuilt from Tune's state): export, with or without the verification, picks none of them."""
    import shutil

    exp = tmp_path / "mo"
    shutil.copytree(mo_sweep[0], exp)
    meta = json.loads((exp / "motiontune.json").read_text())
    trials = pd.read_parquet(exp / "trials.parquet")
    ok = trials[trials["status"].isin(["COMPLETED", "STOPPED"])].sort_values(f"best/{GEO}")
    bound = float(ok[f"best/{GEO}"].iloc[len(ok) // 2])  # the better half breaks GEO >= bound
    meta["constraints"] = [*meta["constraints"], f"{GEO}>={bound!r}"]
    (exp / "motiontune.json").write_text(json.dumps(meta))
    (exp / "verification.parquet").unlink()  # unverified: the search's ranking
    proc = run_cli("export", str(exp), "--top", "2", "--out", str(tmp_path / "b.json"))
    assert proc.returncode == 0, proc.stderr
    infeasible = set(ok.loc[ok[f"best/{GEO}"] < bound, "trial_id"])
    assert infeasible
    for name in ("b.top1.provenance.json", "b.top2.provenance.json"):
        p = tmp_path / name
        if p.exists():
            rec = json.loads(p.read_text())
            assert rec["trial_id"] not in infeasible and rec["value"] >= bound


def test_single_objective_sweeps_are_unchanged(smoke_sweep):
    exp, trials, _, stdout = smoke_sweep
    assert "pareto" not in trials.columns and "feasible" not in trials.columns
    assert not any(c.startswith(AT_BEST) for c in trials.columns)
    assert "| front" not in stdout
    meta = json.loads((exp / "motiontune.json").read_text())
    assert meta["extra_objectives"] == {} and meta["constraints"] == []


def test_the_report_draws_the_front(mo_sweep, tmp_path):
    exp, _ = mo_sweep
    proc = run_cli("report", str(exp), "--out", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "r" / "front.png").stat().st_size > 10_000
    assert "front of " in proc.stdout and "verified (mean ± sd" in proc.stdout
    assert (tmp_path / "r" / "front_end_1.gif").exists()


# --- bad input -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "fragments"), [
    (["--metric", GEO, "--metric", "FreeRun/long/FootSkate"], ["--metric 'FreeRun/long/FootSkate'", FOOT]),
    (["--metric", GEO, "--metric", FOOT, "--mode", "min"], ["--mode is given 1 time(s) for 2 --metric(s)"]),
    (["--constraint", f"{DIVERGED}=0"], ["must be METRIC<=VALUE or METRIC>=VALUE"]),
    (["--constraint", "FreeRun/long/Diverged<=0"], ["not a metric the trainer reports", DIVERGED]),
    (["--metric", FOOT], ["the first objective is the one ASHA stops on"]),
    (["--metric", GEO, "--metric", "FreeRun/group/inplace/VsCopyLast"], ["FreeRun/group/in-place/VsCopyLast"]),
])  # fmt: skip
def test_bad_sweep_objectives_are_refused_before_anything_is_written(tmp_path, args, fragments):
    proc = run_cli("sweep", "--smoke-test", *args, "--storage", str(tmp_path / "s"), "--name", "x", cwd=tmp_path)
    assert_refused(proc, *fragments)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(("args", "fragments"), [
    (["--prefer", "GeoDeg"], ["--prefer 'GeoDeg': not an objective of this sweep"]),
    (["--prefer", FOOT, "--within", f"{GEO}=five"], ["is not a percentage >= 0 or a number"]),
    (["--within", f"{GEO}=5%"], ["give --prefer METRIC too"]),
    (["--prefer", FOOT, "--front"], ["give one of them"]),
])  # fmt: skip
def test_bad_export_choices_are_refused(mo_sweep, tmp_path, args, fragments):
    proc = run_cli("export", str(mo_sweep[0]), *args, "--out", str(tmp_path / "x.json"))
    assert_refused(proc, *fragments)
    assert list(tmp_path.iterdir()) == []


def test_front_on_a_single_objective_sweep_is_refused(smoke_sweep, tmp_path):
    proc = run_cli("export", str(smoke_sweep[0]), "--front", "--out", str(tmp_path / "x.json"))
    assert_refused(proc, "has one objective (FreeRun/GeoDeg), so no front")
    assert list(tmp_path.iterdir()) == []
