"""How much an experiment holds on its storage: bytes, files, and the model files of each trial.

Read through the experiment's pyarrow filesystem, so the figure is the same for
a local path and for ``s3://``/``gs://`` storage. A trial is a folder holding
Tune's ``params.json`` (search trials, and verification trials under
``verification/``); its model files are its ``*.pt`` (Tune's kept checkpoints
and ``run/best_model.pt``), which ``tuner.search.trainable`` bounds per trial.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

import pyarrow.fs as pafs

from tuner.experiment.files import filesystem

TRIAL_MARKER = "params.json"  # Tune writes it into every trial folder
MODEL_SUFFIX = ".pt"
_UNITS = ("B", "kB", "MB", "GB", "TB")


@dataclass(frozen=True)
class StorageUsage:
    """What an experiment folder holds. ``models_per_trial``: trial folder (relative) -> its ``*.pt`` count."""

    bytes: int
    files: int
    model_files: int
    models_per_trial: dict[str, int] = field(default_factory=dict)

    @property
    def trials(self) -> int:
        return len(self.models_per_trial)

    def describe(self) -> str:
        """One line, e.g. ``7.9 MB in 231 files; 18 model files in 6 trials (at most 3 per trial)``."""
        line = f"{format_bytes(self.bytes)} in {self.files} files"
        if self.trials:
            most = max(self.models_per_trial.values())
            line += f"; {self.model_files} model files in {self.trials} trials (at most {most} per trial)"
        return line


def format_bytes(n: int) -> str:
    """Decimal units, as storage is billed: ``11_700_000`` -> ``11.7 MB``."""
    value, unit = float(n), _UNITS[0]
    for unit in _UNITS:
        if value < 1000 or unit == _UNITS[-1]:
            break
        value /= 1000
    return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"


def storage_usage(path: str) -> StorageUsage:
    """Sizes of every file under ``path`` (a local folder or a filesystem URI); raises OSError if unlistable."""
    fs, root = filesystem(path)
    root = root.rstrip("/")
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    files = [i for i in infos if i.type == pafs.FileType.File]
    rel = {i.path: posixpath.relpath(i.path, root) for i in files}
    trial_dirs = {posixpath.dirname(r) for r in rel.values() if posixpath.basename(r) == TRIAL_MARKER}
    per_trial = dict.fromkeys(sorted(trial_dirs), 0)
    for r in rel.values():
        if not r.endswith(MODEL_SUFFIX):
            continue
        parent = posixpath.dirname(r)
        while parent and parent not in trial_dirs:
            parent = posixpath.dirname(parent)
        if parent in trial_dirs:
            per_trial[parent] += 1
    return StorageUsage(
        bytes=sum(i.size or 0 for i in files),
        files=len(files),
        model_files=sum(1 for r in rel.values() if r.endswith(MODEL_SUFFIX)),
        models_per_trial=per_trial,
    )


def storage_line(path: str) -> str:
    """``size on storage: ...`` for a summary; a storage that cannot be listed says so instead of failing it."""
    try:
        return f"size on storage: {storage_usage(path).describe()}"
    except OSError as e:
        return f"size on storage: unknown ({str(e).splitlines()[0]})"
