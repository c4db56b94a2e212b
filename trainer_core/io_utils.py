"""Small file helpers: atomic writes, JSON reading with the seed's ``//`` comments."""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainer_core.errors import ConfigError, DataError, MotiontuneError

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: Path, write: Callable[[io.BufferedWriter], None]) -> None:
    """Write through a temp file in the same folder, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _nearest_existing(path: Path) -> Path:
    """``path``'s nearest ancestor that exists (the folder a new output would be made in)."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def check_writable(out: Path, what: str = "--out") -> None:
    """Raise ``ConfigError`` unless a file can be created at ``out`` (checked before any work is done)."""
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"{what} {out}: is a folder, but must be a file path")
    parent = _nearest_existing(out)
    if not parent.is_dir():
        raise ConfigError(f"{what} {out}: `{parent}` is a file, not a folder; choose another output path")
    if not os.access(parent, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise ConfigError(f"{what} {out}: `{parent}` is not writable; choose another output path")


def check_out_folder(out: Path, what: str = "--out") -> None:
    """Raise ``ConfigError`` unless ``out`` is a folder, or one can be made there (checked before any work)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{what} {out}: is a file, but must be a folder (made if missing); choose another path")
    parent = out if out.is_dir() else _nearest_existing(out)
    if not parent.is_dir():
        raise ConfigError(f"{what} {out}: `{parent}` is a file, not a folder; choose another output path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {out}: `{parent}` is not writable; choose another output path")


def check_suffix(out: Path, suffixes: tuple[str, ...], what: str = "--out", kind: str = "file") -> str:
    """The suffix of ``out`` (lower case), one of ``suffixes``; else ``ConfigError`` naming the ones allowed."""
    out = Path(out)
    suffix = out.suffix.lower()
    allowed = " or ".join(suffixes)
    if out.is_dir():
        raise ConfigError(f"{what} {out}: is a folder, but must be a {kind} path ending in {allowed}")
    if not suffix:
        raise ConfigError(f"{what} {out}: has no suffix; end it in {allowed} (a {kind})")
    if suffix not in suffixes:
        raise ConfigError(f"{what} {out}: ends in `{out.suffix}`, but a {kind} ends in {allowed}; rename it")
    return suffix


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def json_safe(o: Any) -> Any:
    """NaN/inf become null (plain JSON has no NaN); tuples become lists."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: json_safe(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [json_safe(v) for v in o]
    return o


def atomic_write_json(path: Path, obj: Any) -> None:
    """Plain JSON, two-space indent, keys in the order given (stable for diffs); NaN written as null."""
    atomic_write_text(path, json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n")


def strip_json_comments(text: str) -> str:
    """Remove ``// ...`` line comments outside strings (the seed's config files carry them)."""
    out, i, n = [], 0, len(text)
    in_str = False
    while i < n:
        c = text[i]
        if in_str:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 1
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
            out.append(c)
        elif c == "/" and text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


def read_json(path: Path, exc: type[MotiontuneError] = DataError, comments: bool = False) -> Any:
    """Parse a JSON file; a missing or malformed file raises ``exc`` naming it and the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise exc(f"{path}: file not found; check the path") from None
    except IsADirectoryError:
        raise exc(f"{path}: is a folder, but a JSON file is expected") from None
    except (OSError, UnicodeDecodeError) as e:
        raise exc(f"{path}: cannot be read ({e})") from None
    if comments:
        text = strip_json_comments(text)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise exc(f"{path}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
