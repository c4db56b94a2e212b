"""An experiment directory's metadata: what the experiment was, as ``motiontune.json``.

Ray Tune owns the directory's layout; motiontune adds ``motiontune.json`` (the
base config, the space, the objective and the sweep settings, everything resume
and export need), ``trials.parquet`` and ``history.parquet``. Where the directory lives (a local path or any
pyarrow filesystem URI) and how its files are read and written: ``tuner.experiment.files``.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from trainer_core import __version__
from trainer_core.config import TrainConfig
from trainer_core.config_load import config_from_dict
from trainer_core.errors import raise_all
from tuner.experiment.files import ExperimentError, filesystem, is_uri, join, read_bytes, write_bytes
from tuner.experiment.objectives import Constraint, Objective

META_FILE = "motiontune.json"
TRIALS_FILE = "trials.parquet"
HISTORY_FILE = "history.parquet"
# 2: the sweep settings are fields of their own; format 1 kept them in an ``extra`` object, which an older
# motiontune would find empty here (and then, say, skip the verification), so it refuses format 2 instead.
FORMAT = 2
READS_FORMATS = (1, 2)
# The keys format 1 kept in ``extra``, every one a field now. No version wrote any other, and nothing reads
# another, so any other key is dropped (kept, it would invite string-keyed reads again).
_EXTRA_KEYS = ("epochs", "grace_period", "reduction_factor", "smoke_test", "budget", "verify", "status_every")


@dataclass(frozen=True)
class VerifySettings:
    """What the verification after the search does: re-train the ``top`` finalists and the base config on
    ``seeds`` fresh seeds, on ``data`` (None: the base config's data)."""

    top: int
    seeds: int
    data: str | None = None


@dataclass
class ExperimentMeta:
    """Everything needed to resume or export an experiment, stored as ``motiontune.json``.

    The fields without a default are in every ``motiontune.json`` ever written (``epochs``, ``grace_period``
    and ``reduction_factor`` in format 1's ``extra``); a file without one is malformed. The fields with a
    default were added later or are optional: the default is what a file without them meant.
    """

    name: str
    storage: str
    base_config: dict[str, Any]
    space: dict[str, Any]  # the space file's content, so a later edit of the file changes nothing here
    space_name: str
    metric: str
    mode: str
    samples: int
    max_concurrent: int
    scheduler: str
    searcher: str
    seed: int
    resources: dict[str, float]
    data_fingerprint: str
    epochs: int  # each trial's epochs: ASHA's max_t, the verification's default length
    grace_period: int  # ASHA's first rung
    reduction_factor: int  # ASHA's rung spacing
    warm_start: dict[str, Any] | None = None
    optuna_storage: str | None = None
    smoke_test: bool = False
    budget: int | None = None  # the search's trial-epoch budget; None: no budget
    verify: VerifySettings | None = None  # None: no verification after the search (``--no-verify``)
    status_every: float | None = None  # seconds between progress lines; None: the progress module's default
    # Objectives after the first (``metric``/``mode``), metric -> mode, in order: a multi-objective sweep.
    extra_objectives: dict[str, str] = field(default_factory=dict)
    constraints: list[str] = field(default_factory=list)  # ``METRIC<=BOUND`` / ``METRIC>=BOUND``
    format: int = FORMAT
    package_version: str = __version__

    @property
    def path(self) -> str:
        return join(self.storage, self.name)

    @property
    def objectives(self) -> list[Objective]:
        """Every objective, the first (``metric``, ASHA's and ``best_model.pt``'s) first."""
        return [Objective(self.metric, self.mode), *(Objective(m, d) for m, d in self.extra_objectives.items())]

    @property
    def multi_objective(self) -> bool:
        return bool(self.extra_objectives)

    def constraint_list(self) -> list[Constraint]:
        return [Constraint.parse(c) for c in self.constraints]

    def base(self) -> TrainConfig:
        """The base config as a trial runs it: ``given_base`` over ``epochs`` (``sweep --epochs`` rescales it
        as ``train --epochs`` does; experiments written before stored it rescaled, with the same epochs)."""
        return self.given_base().with_epochs(self.epochs)

    def given_base(self) -> TrainConfig:
        """``base_config`` as given, before ``--epochs``: a trial's params apply to it, then it is rescaled
        (``search_spaces.mapping.params_to_config(..., epochs=self.epochs)``)."""
        return config_from_dict(self.base_config, f"{join(self.path, META_FILE)}: base_config")

    def save(self) -> None:
        write_bytes(join(self.path, META_FILE), (json.dumps(asdict(self), indent=2) + "\n").encode())

    @classmethod
    def load(cls, experiment_dir: str) -> ExperimentMeta:
        """Read an experiment's metadata; a missing or foreign directory is one clear error."""
        exp = experiment_dir if is_uri(experiment_dir) else str(Path(experiment_dir).expanduser().resolve())
        fs, p = filesystem(exp)
        info = fs.get_file_info(p)
        if info.type == pafs.FileType.NotFound:
            raise ExperimentError(f"{experiment_dir}: experiment directory not found; check the path")
        if info.type != pafs.FileType.Directory:
            raise ExperimentError(f"{experiment_dir}: is a file, but an experiment directory is expected")
        data = read_bytes(join(exp, META_FILE))
        if data is None:
            raise ExperimentError(
                f"{experiment_dir}: not a motiontune experiment (no {META_FILE}); "
                "pass the folder `motiontune sweep` printed"
            )
        meta = from_json(data, join(exp, META_FILE))
        # The experiment may have moved (copied off a cluster): its location is where it is now.
        meta.storage, meta.name = _split(exp)
        return meta


def from_json(data: bytes | str, where: str) -> ExperimentMeta:
    """An ``ExperimentMeta`` from a ``motiontune.json``'s text, format 1 or 2.

    Everything wrong with the file (not JSON, not an object, a missing field, a value of the wrong type) is
    one ``ExperimentError`` naming ``where`` and each problem. Format 1's ``extra`` is mapped onto the fields;
    keys of the file that no field has are ignored, so a file with more than this version knows still loads.
    """
    try:
        raw = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ExperimentError(f"{where}: unreadable ({e})") from None
    if not isinstance(raw, dict):
        raise ExperimentError(f"{where}: expected a JSON object, found {_json_type(raw)}")
    fmt = raw.get("format", 1)
    if not _is_int(fmt):
        raise ExperimentError(f"{where}: format is {_show(fmt)}, but must be an integer")
    if fmt not in READS_FORMATS:
        raise ExperimentError(f"{where}: format {fmt}, this version reads {', '.join(map(str, READS_FORMATS))}")
    problems: list[str] = []
    extra = raw.get("extra", {})
    if fmt == 1 and isinstance(extra, dict):
        raw = {**{k: v for k, v in extra.items() if k in _EXTRA_KEYS}, **raw}
    elif fmt == 1:
        problems.append(f"extra is {_json_type(extra)}, but must be an object")
    raw = {k: v for k, v in raw.items() if k != "format"}  # what is read is held in this version's format
    meta = _build(ExperimentMeta, raw, "", problems)
    raise_all(problems, ExperimentError, where)
    return meta


def _build(cls: type, raw: dict[str, Any], prefix: str, problems: list[str]) -> Any:
    """``cls(**raw)`` for a dataclass, each field's JSON value checked against its annotation first; keys no
    field has are ignored. With a problem, it is added to ``problems`` (the field named with ``prefix``) and
    None is returned."""
    hints = typing.get_type_hints(cls)
    required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
    missing = [name for name in required if name not in raw]
    if missing:
        problems.append(f"missing {', '.join(prefix + m for m in missing)}")
    kwargs: dict[str, Any] = {}
    ok = not missing
    for f in fields(cls):
        if f.name not in raw:
            continue
        value, hint = raw[f.name], hints[f.name]
        inner = _dataclass_in(hint)
        if inner is not None and isinstance(value, dict):
            value = _build(inner, value, f"{prefix}{f.name}.", problems)
            ok = ok and value is not None
        elif not _matches(value, hint):
            problems.append(f"{prefix}{f.name} is {_show(value)}, but must be {_describe(hint)}")
            ok = False
        kwargs[f.name] = value
    return cls(**kwargs) if ok else None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _dataclass_in(hint: Any) -> type | None:
    """The dataclass ``hint`` is, or is ``X | None`` of."""
    for h in typing.get_args(hint) if _is_union(hint) else (hint,):
        if isinstance(h, type) and is_dataclass(h):
            return h
    return None


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _matches(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a field's annotation (an int is a float here; a bool is no number)."""
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if _is_union(hint):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if typing.get_origin(hint) is dict:
        _, v = typing.get_args(hint)
        return isinstance(value, dict) and all(_matches(x, v) for x in value.values())
    if typing.get_origin(hint) is list:
        (v,) = typing.get_args(hint)
        return isinstance(value, list) and all(_matches(x, v) for x in value)
    if hint is int:
        return _is_int(value)
    if hint is float:
        return _is_int(value) or isinstance(value, float)
    return isinstance(hint, type) and not is_dataclass(hint) and isinstance(value, hint)


def _describe(hint: Any) -> str:
    if _is_union(hint):
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if typing.get_origin(hint) is dict:
        _, v = typing.get_args(hint)
        return "an object" if v is Any else f"an object whose values are each {_describe(v)}"
    if typing.get_origin(hint) is list:
        return f"a list whose items are each {_describe(typing.get_args(hint)[0])}"
    if isinstance(hint, type) and is_dataclass(hint):
        return "an object"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(hint, str(hint))


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else f"{_json_type(value)}"


def _split(path: str) -> tuple[str, str]:
    if is_uri(path):
        head, _, tail = path.rstrip("/").rpartition("/")
        return head, tail
    p = Path(path)
    return str(p.parent), p.name

