"""``motiontune.json``: what a sweep writes loads back; format 1 files (settings in ``extra``) still load; a
malformed file is one clear error naming the file and each problem, never a TypeError."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli
from tests.trainer_core.test_cli import assert_one_line_error


def _meta(storage: str, **changes):
    from trainer_core.config_load import smoke_config
    from tuner.experiment.meta import ExperimentMeta, VerifySettings

    fields = dict(
        name="exp", storage=storage, base_config=smoke_config().to_dict(), space={"name": "s", "params": {}},
        space_name="s", metric="FreeRun/GeoDeg", mode="min", samples=8, max_concurrent=2, scheduler="asha",
        searcher="optuna", seed=0, resources={"cpu": 1.0, "gpu": 0.0}, data_fingerprint="abc", epochs=4,
        grace_period=2, reduction_factor=2, smoke_test=True, budget=40, verify=VerifySettings(2, 2, None),
        status_every=5.0,
    )  # fmt: skip
    return ExperimentMeta(**{**fields, **changes})


def _format_1(storage: str) -> dict:
    """A ``motiontune.json`` as motiontune wrote it before the sweep settings were fields: an ``extra`` object."""
    from trainer_core.config_load import smoke_config

    return {
        "name": "old", "storage": storage, "base_config": smoke_config().to_dict(),
        "space": {"name": "s", "params": {}}, "space_name": "s", "metric": "FreeRun/GeoDeg", "mode": "min",
        "samples": 8, "max_concurrent": 2, "scheduler": "asha", "searcher": "optuna", "seed": 0,
        "resources": {"cpu": 1, "gpu": 0}, "data_fingerprint": "abc", "warm_start": None, "optuna_storage": None,
        "format": 1, "package_version": "0.1.0",
        "extra": {"epochs": 4, "grace_period": 2, "reduction_factor": 2, "smoke_test": True, "budget": None,
                  "verify": {"top": 2, "seeds": 3, "data": None}, "status_every": None, "someone_elses": 1},
    }  # fmt: skip


def _write(tmp_path, content) -> str:
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "motiontune.json").write_text(content if isinstance(content, str) else json.dumps(content))
    return str(exp)


def test_what_save_writes_loads_back(tmp_path):
    from tuner.experiment.meta import FORMAT, ExperimentMeta

    meta = _meta(str(tmp_path))
    meta.save()
    raw = json.loads((tmp_path / "exp" / "motiontune.json").read_text())
    assert raw["format"] == FORMAT and "extra" not in raw
    assert raw["verify"] == {"top": 2, "seeds": 2, "data": None}
    assert not list((tmp_path / "exp").glob(".motiontune.json.*"))  # written through a temp file, renamed
    assert ExperimentMeta.load(str(tmp_path / "exp")) == meta


def test_a_format_1_file_with_extra_loads(tmp_path):
    from tuner.experiment.meta import FORMAT, ExperimentMeta, VerifySettings

    meta = ExperimentMeta.load(_write(tmp_path, _format_1("/elsewhere")))
    assert (meta.epochs, meta.grace_period, meta.reduction_factor, meta.smoke_test) == (4, 2, 2, True)
    assert meta.budget is None and meta.status_every is None
    assert meta.verify == VerifySettings(top=2, seeds=3, data=None)
    assert (meta.storage, meta.name) == (str(tmp_path), "exp")  # where it is now, not where it was written
    assert meta.format == FORMAT  # held (and saved again) in this version's format
    assert meta.base().optim.epochs == meta.epochs  # base_config is read as it was written


def test_a_format_1_file_without_the_later_keys_loads_with_their_defaults(tmp_path):
    from tuner.experiment.meta import ExperimentMeta

    old = _format_1("/elsewhere")
    old["extra"] = {"epochs": 4, "grace_period": 2, "reduction_factor": 3, "smoke_test": False}  # the first version
    del old["warm_start"], old["optuna_storage"]
    meta = ExperimentMeta.load(_write(tmp_path, old))
    assert (meta.budget, meta.verify, meta.status_every, meta.warm_start, meta.optuna_storage) == (None,) * 5
    assert meta.reduction_factor == 3


@pytest.mark.parametrize(
    "content, fragments",
    [
        ({}, ["missing name, storage, base_config", "epochs, grace_period, reduction_factor"]),
        ([], ["expected a JSON object, found a list"]),
        ("{not json", ["unreadable"]),
        ({"format": 9}, ["format 9, this version reads 1, 2"]),
        ({"format": "1"}, ['format is "1"', "must be an integer"]),
    ],
    ids=["empty", "list", "not-json", "future-format", "format-string"],
)
def test_a_malformed_file_is_one_error_naming_it(tmp_path, content, fragments):
    from tuner.experiment.files import ExperimentError
    from tuner.experiment.meta import ExperimentMeta

    exp = _write(tmp_path, content)
    with pytest.raises(ExperimentError) as e:
        ExperimentMeta.load(exp)
    msg = str(e.value)
    assert msg.startswith(f"{exp}/motiontune.json: ") and "\n" not in msg
    for f in fragments:
        assert f in msg, msg


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"samples": "8"}, 'samples is "8", but must be an integer'),
        ({"smoke_test": 1}, "smoke_test is 1, but must be true or false"),
        ({"resources": {"cpu": "one"}}, 'resources is {"cpu": "one"}, but must be an object whose values'),
        ({"extra": [1]}, "extra is a list, but must be an object"),
        ({"verify": {"top": 2}}, "missing verify.seeds"),
        ({"verify": {"top": "2", "seeds": 3}}, 'verify.top is "2", but must be an integer'),
        ({"verify": 3}, "verify is 3, but must be an object or null"),
    ],
)
def test_a_value_of_the_wrong_type_is_named(tmp_path, change, fragment):
    from tuner.experiment.files import ExperimentError
    from tuner.experiment.meta import ExperimentMeta

    old = _format_1("/elsewhere")
    if "verify" in change:
        old["extra"].update(change)
    else:
        old.update(change)
    with pytest.raises(ExperimentError, match="motiontune.json: ") as e:
        ExperimentMeta.load(_write(tmp_path, old))
    assert fragment in str(e.value)


def test_every_problem_is_named_at_once(tmp_path):
    from tuner.experiment.files import ExperimentError
    from tuner.experiment.meta import ExperimentMeta

    old = {**_format_1("/elsewhere"), "samples": None, "mode": 3}
    del old["metric"]
    with pytest.raises(ExperimentError) as e:
        ExperimentMeta.load(_write(tmp_path, old))
    assert str(e.value).endswith(
        "motiontune.json: missing metric; mode is 3, but must be a string; samples is null, but must be an integer"
    )


def test_the_cli_reports_an_empty_motiontune_json_in_one_line(tmp_path):
    exp = _write(tmp_path, {})
    assert_one_line_error(run_cli("status", exp), f"{exp}/motiontune.json: missing name")
