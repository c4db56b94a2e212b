"""Where an experiment's files live and how they are read and written: a local path or any pyarrow filesystem URI.

Everything in an experiment directory (``motiontune.json``, the results tables, the verification's files, the
driver lock) goes through these helpers, so the same code serves local disk and ``s3://``/``gs://`` storage.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.fs as pafs

from trainer_core.errors import MotiontuneError
from trainer_core.io_utils import atomic_write


class ExperimentError(MotiontuneError):
    """An experiment directory is missing, not an experiment, or has nothing to export."""


def is_uri(path: str) -> bool:
    return "://" in str(path)


def resolve_storage(storage: str) -> str:
    """A URI as given; a local path made absolute (Ray needs absolute local paths)."""
    return storage if is_uri(storage) else str(Path(storage).expanduser().resolve())


def filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and in-filesystem path of a local path or a URI (s3://, gs://, ...)."""
    if is_uri(path):
        try:
            return pafs.FileSystem.from_uri(path)
        except (ValueError, OSError) as e:  # pyarrow's ArrowInvalid is a ValueError
            raise ExperimentError(f"{path}: not a filesystem URI pyarrow can open ({e})") from None
    return pafs.LocalFileSystem(), str(Path(path).expanduser().resolve())


def write_bytes(path: str, data: bytes) -> None:
    """Atomic on local disk (temp file + rename); a single put on object stores."""
    if is_uri(path):
        fs, p = filesystem(path)
        with fs.open_output_stream(p) as f:
            f.write(data)
    else:
        atomic_write(Path(path), lambda f: f.write(data))


def read_bytes(path: str) -> bytes | None:
    fs, p = filesystem(path)
    try:
        with fs.open_input_stream(p) as f:
            return f.read()
    except (FileNotFoundError, OSError):
        return None


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts]) if is_uri(base) else str(Path(base, *parts))
