"""Verification: a real smoke sweep re-trains its finalists and the base on fresh seeds; export, report, verify."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

from tests.conftest import run_cli
from tests.trainer_core.test_cli import assert_one_line_error
from tests.tuner.test_report import png_size

METRIC = "FreeRun/GeoDeg"


@pytest.fixture(scope="module")
def verified_sweep(tmp_path_factory):
    """`motiontune sweep --smoke-test` with its default verification (top 2 + base, 2 fresh seeds).

    Ten trainings (80 s on 2 cores): the tests that use it run with the slow ones (`pytest -m slow`, CI)."""
    root = tmp_path_factory.mktemp("verified")
    proc = run_cli("sweep", "--smoke-test", "--samples", "4", "--max-concurrent", "2", "--storage", str(root),
                   "--name", "v", cwd=root)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    exp = root / "v"
    return exp, pd.read_parquet(exp / "trials.parquet"), pd.read_parquet(exp / "verification.parquet"), proc.stdout


def test_t_quantile_and_interval_match_the_textbook_table():
    """``t_quantile`` is SciPy's, so it is checked against the printed table (two-sided 95 %: t(0.975, df)), and
    ``t_interval`` against an interval worked by hand."""
    from tuner.verify.stats import t_interval, t_quantile

    table = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 7: 2.365, 30: 2.042}
    for df, t in table.items():
        assert t_quantile(0.975, df) == pytest.approx(t, abs=5e-4)
    assert t_quantile(0.95, 10) == pytest.approx(1.812, abs=5e-4)  # one-sided 95 %
    for p, df in ((0.5, 3), (1.0, 3), (0.975, 0)):
        with pytest.raises(ValueError):
            t_quantile(p, df)
    # 1, 2, 3, 4, 5: mean 3, sd sqrt(2.5), n 5 -> half-width 2.776 * 1.5811 / 2.2361 = 1.963
    mean, lo, hi = t_interval([1.0, 2.0, 3.0, 4.0, 5.0, math.nan])  # NaN: a missing seed, left out
    assert mean == 3.0 and (lo, hi) == pytest.approx((3.0 - 1.963, 3.0 + 1.963), abs=1e-3)


@pytest.mark.slow
def test_the_finalists_are_the_search_top_two_and_the_base(verified_sweep):
    exp, trials, table, stdout = verified_sweep
    assert len(table) == 3 and table["is_base"].sum() == 1
    searched = trials[~trials["warm_start"] & trials["status"].isin(["COMPLETED", "STOPPED"])]
    top2 = searched.sort_values(f"best/{METRIC}", kind="stable").head(2)
    finalists = table[~table["is_base"]].set_index("label")
    assert set(finalists.index) == set(top2["trial_id"])
    for _, t in top2.iterrows():
        assert finalists.loc[t["trial_id"], "search_value"] == pytest.approx(t[f"best/{METRIC}"])
    warm = trials[trials["warm_start"]].iloc[0]
    base = table[table["is_base"]].iloc[0]
    assert base["trial_id"] == warm["trial_id"] and base["search_value"] == pytest.approx(warm[f"best/{METRIC}"])
    assert "verified on 2 fresh seeds" in stdout and "improvement" in stdout


@pytest.mark.slow
def test_every_config_ran_on_the_same_fresh_seeds(verified_sweep):
    from tuner.experiment.meta import ExperimentMeta
    from tuner.verify.plan import VerifyPlan, verification_runs

    exp, _, table, _ = verified_sweep
    seeds = [list(s) for s in table["seeds"]]
    assert all(s == seeds[0] for s in seeds) and len(seeds[0]) == 2 and len(set(seeds[0])) == 2
    assert 0 not in seeds[0]  # the seed every search trial trained with
    meta = ExperimentMeta.load(str(exp))
    runs = verification_runs(meta, VerifyPlan.load(meta))
    assert len(runs) == 6 and (runs["status"] == "COMPLETED").all()
    for label in table["label"]:
        assert sorted(runs.loc[runs["finalist"] == label, "seed"]) == sorted(seeds[0])
    for _, run in runs.iterrows():  # the trainer itself trained with that seed, full length
        trained = json.loads((Path(run["checkpoint"]).parent / "config.json").read_text())
        assert trained["seed"] == run["seed"] and trained["epochs"] == 4
    assert (runs["best_epoch"] >= 1).all()


@pytest.mark.slow
def test_the_ranking_follows_the_per_seed_values(verified_sweep):
    _, _, table, _ = verified_sweep
    base = table[table["is_base"]].iloc[0]
    for _, row in table.iterrows():
        values = list(row["best_values"])
        assert row["best_mean"] == pytest.approx(statistics.fmean(values))
        assert row["best_sd"] == pytest.approx(statistics.stdev(values))
        assert row["final_mean"] == pytest.approx(statistics.fmean(row["final_values"]))
        assert all(b <= f + 1e-9 for b, f in zip(values, row["final_values"]))  # best epoch vs last epoch
        gains = [b - v for v, b in zip(values, base["best_values"])]  # minimising: positive = better than base
        assert list(row["best_improvement"]) == pytest.approx(gains)
        mean, sd, n = statistics.fmean(gains), statistics.stdev(gains), len(gains)
        half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
        assert row["best_improvement_mean"] == pytest.approx(mean)
        if not row["is_base"]:
            assert (row["best_improvement_lo"], row["best_improvement_hi"]) == pytest.approx((mean - half, mean + half))
            assert row["best_excludes_zero"] == (mean - half > 0 or mean + half < 0)
    means = [statistics.fmean(v) for v in table["best_values"]]
    assert means == sorted(means) and list(table["rank"]) == [1, 2, 3]
    assert table["winner"].tolist() == [True, False, False]


@pytest.mark.slow
def test_export_writes_the_verified_winner_with_provenance(verified_sweep, tmp_path):
    from search_spaces.mapping import params_to_config
    from search_spaces.spec import space_from_dict
    from tuner.experiment.meta import ExperimentMeta

    exp, _, table, _ = verified_sweep
    out = tmp_path / "best.json"
    proc = run_cli("export", str(exp), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    winner, base = table.iloc[0], table[table["is_base"]].iloc[0]
    prov = json.loads((tmp_path / "best.provenance.json").read_text())
    ver = prov["verification"]
    assert prov["verified"] is True and prov["label"] == winner["label"] and prov["rank"] == 1
    assert ver["seeds"] == list(winner["seeds"]) and ver["values"] == pytest.approx(list(winner["best_values"]))
    assert ver["mean"] == pytest.approx(winner["best_mean"]) and ver["sd"] == pytest.approx(winner["best_sd"])
    assert ver["base"]["values"] == pytest.approx(list(base["best_values"]))
    lo, hi = ver["improvement"]["ci95"]
    assert ver["improvement"]["mean"] == pytest.approx(base["best_mean"] - winner["best_mean"])
    assert ver["improvement"]["excludes_zero"] == (lo > 0 or hi < 0)
    assert prov["search_value"] == pytest.approx(winner["search_value"])
    meta = ExperimentMeta.load(str(exp))
    if winner["is_base"]:
        expected = meta.base().to_dict()
        assert "no finalist beats the base config" in proc.stdout
    else:
        params = json.loads(winner["params"])
        expected = params_to_config(space_from_dict(meta.space, "space"), params, meta.base()).to_dict()
        assert f"verified rank 1: trial {winner['label']}" in proc.stdout and "improvement" in proc.stdout
    assert json.loads(out.read_text()) == json.loads(json.dumps(expected))
    assert len(proc.stdout.strip().splitlines()) == 1


@pytest.mark.slow
def test_report_adds_the_verification_plot(verified_sweep, tmp_path):
    exp = verified_sweep[0]
    proc = run_cli("report", str(exp), "--out", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr
    w, h = png_size(tmp_path / "r" / "verification.png")
    assert w > 500 and h > 300
    assert 'src="verification.png"' in (tmp_path / "r" / "index.html").read_text()
    assert "verified on 2 fresh seeds" in proc.stdout


def test_export_without_a_verification_says_unverified(smoke_sweep, tmp_path):
    exp = smoke_sweep[0]
    proc = run_cli("export", str(exp), "--out", str(tmp_path / "b.json"))
    assert proc.returncode == 0, proc.stderr
    assert "unverified: the pick is the best single-seed search value" in proc.stdout
    prov = json.loads((tmp_path / "b.provenance.json").read_text())
    assert prov["verified"] is False and "motiontune verify" in prov["unverified"]


@pytest.mark.slow  # four trainings and a second dataset (70 s on 2 cores)
def test_verify_command_when_no_finalist_beats_the_base(tmp_path):
    """A search whose every config is worse than the base (lr far too small): `verify`, then export says so.

    With `--verify-data`: each re-trained model is also scored on another dataset folder.
    """
    from tests.conftest import MOCAP_DIR
    from tuner.search.sweep import smoke_base

    clips = [str(MOCAP_DIR / f"dataset-1_{name}_001.bvh") for name in ("run_happy", "walk-left_normal")]
    assert run_cli("data", "import-bvh", *clips, "--out", str(tmp_path / "other")).returncode == 0

    # A test split too: its metrics (summary.json -> test) are carried into verification.parquet.
    (tmp_path / "base.json").write_text(json.dumps({**smoke_base(), "test_split": {"group": "style", "fraction": 0.1}}))
    space = {"name": "tiny_lr", "params": {"lr": {"choices": [1e-7, 2e-7]}}}
    (tmp_path / "space.json").write_text(json.dumps(space))
    proc = run_cli("sweep", "--config", str(tmp_path / "base.json"), "--space", str(tmp_path / "space.json"),
                   "--samples", "2", "--scheduler", "fifo", "--searcher", "random", "--no-verify",
                   "--storage", str(tmp_path), "--name", "lr")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    exp = tmp_path / "lr"
    assert not (exp / "verification.parquet").exists() and "unverified" in proc.stdout
    proc = run_cli("verify", str(exp), "--top", "1", "--seeds", "2", "--verify-data", str(tmp_path / "other"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = pd.read_parquet(exp / "verification.parquet")
    assert len(table) == 2 and bool(table.iloc[0]["is_base"])  # the base wins, on both seeds
    for _, row in table.iterrows():  # the other folder's numbers, per seed, beside copy-last-frame's
        other, copy_last = list(row["verify_data/FreeRun/GeoDeg"]), list(row["verify_data/copy_last/FreeRun/GeoDeg"])
        assert len(other) == 2 and all(math.isfinite(v) and v > 0 for v in other)
        assert row["verify_data/FreeRun/GeoDeg/mean"] == pytest.approx(statistics.fmean(other))
        assert copy_last[0] == pytest.approx(copy_last[1])  # the baseline does not depend on the seed
        for value, checkpoint in zip(row["test/FreeRun/GeoDeg"], row["checkpoints"]):
            summary = json.loads((Path(checkpoint).parent / "summary.json").read_text())
            assert value == pytest.approx(summary["test"]["model"]["FreeRun/GeoDeg"])
    assert table.iloc[1]["best_improvement_mean"] < 0 and all(g < 0 for g in table.iloc[1]["best_improvement"])
    assert table.iloc[0]["search_rank"] == -1 and math.isnan(table.iloc[0]["search_value"])  # base not searched
    out = tmp_path / "best.json"
    proc = run_cli("export", str(exp), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("no finalist beats the base config on 2 fresh seeds")
    assert json.loads(out.read_text())["lr"] == pytest.approx(smoke_base()["lr"])
    prov = json.loads((tmp_path / "best.provenance.json").read_text())
    assert prov["verification"]["other_metrics"]["verify_data/FreeRun/GeoDeg"] == pytest.approx(
        table.iloc[0]["verify_data/FreeRun/GeoDeg/mean"])


def test_sweep_with_verify_data_that_is_no_dataset(tmp_path):
    proc = run_cli("sweep", "--smoke-test", "--storage", str(tmp_path / "s"), "--verify-data", str(tmp_path / "no"))
    assert_one_line_error(proc, str(tmp_path / "no"))
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("flag", ["--verify-top", "--verify-seeds"])
def test_sweep_with_a_zero_verification_count(tmp_path, flag):
    proc = run_cli("sweep", "--smoke-test", "--storage", str(tmp_path), flag, "0")
    assert_one_line_error(proc, f"{flag} is 0, but must be >= 1")
    assert list(tmp_path.iterdir()) == []


def test_verify_a_folder_that_is_not_an_experiment(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    assert_one_line_error(run_cli("verify", str(tmp_path)), "not a motiontune experiment")
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_verify_an_experiment_with_no_finished_trial(all_diverged_sweep):
    before = sorted(p.relative_to(all_diverged_sweep) for p in all_diverged_sweep.rglob("*"))
    proc = run_cli("verify", str(all_diverged_sweep))
    assert_one_line_error(proc, "no finished trial to verify")
    assert sorted(p.relative_to(all_diverged_sweep) for p in all_diverged_sweep.rglob("*")) == before
