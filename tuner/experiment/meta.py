"""An experiment directory's metadata: what the experiment was, as ``motiontune.json``.

Ray Tune owns the directory's layout; motiontune adds ``motiontune.json`` (the
base config, the space, the objective and the sweep settings, everything resume
and export need), ``trials.parquet`` and ``history.parquet``. Where the directory lives (a local path or any
pyarrow filesystem URI) and how its files are read and written: ``tuner.experiment.files``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from trainer_core import __version__
from trainer_core.config import TrainConfig
from trainer_core.config_load import config_from_dict
from trainer_core.errors import ConfigError, did_you_mean
from tuner.experiment.files import ExperimentError, filesystem, is_uri, join, read_bytes, write_bytes

META_FILE = "motiontune.json"
TRIALS_FILE = "trials.parquet"
HISTORY_FILE = "history.parquet"
FORMAT = 1


@dataclass
class ExperimentMeta:
    """Everything needed to resume or export an experiment, stored as ``motiontune.json``."""

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
    warm_start: dict[str, Any] | None = None
    optuna_storage: str | None = None
    format: int = FORMAT
    package_version: str = __version__
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return join(self.storage, self.name)

    def base(self) -> TrainConfig:
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
        try:
            raw = json.loads(data)
            meta = cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})
        except (json.JSONDecodeError, TypeError) as e:
            raise ExperimentError(f"{join(exp, META_FILE)}: unreadable ({e})") from None
        if meta.format != FORMAT:
            raise ExperimentError(f"{join(exp, META_FILE)}: format {meta.format}, this version reads {FORMAT}")
        # The experiment may have moved (copied off a cluster): its location is where it is now.
        meta.storage, meta.name = _split(exp)
        return meta


def _split(path: str) -> tuple[str, str]:
    if is_uri(path):
        head, _, tail = path.rstrip("/").rpartition("/")
        return head, tail
    p = Path(path)
    return str(p.parent), p.name


def check_metric(metric: str, known: list[str]) -> None:
    if metric not in known:
        raise ConfigError(f"--metric {metric!r}: not a metric the trainer reports{did_you_mean(metric, known)}")
