"""One driver per experiment: a lock file in the experiment folder, which a dead process does not hold.

``motiontune sweep``, ``resume`` and ``verify`` hold ``driver.lock`` while they run. A second one on the same
experiment refuses in one line. The lock names its holder (host, pid, the pid's start time, so a reused pid
is not taken for it) and a heartbeat the holder refreshes every ``HEARTBEAT_S`` seconds. A lock is taken over
when its holder is gone: on the same host, when that process no longer runs; from another host (shared
storage), when the heartbeat is older than ``STALE_AFTER_S``.

On local disk the lock is created with ``O_EXCL``; on an object store (s3://...), where there is no atomic
create, the check-then-write leaves a window of one round trip in which two drivers could both start.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tuner.experiment.files import ExperimentError, filesystem, is_uri, join, read_bytes, write_bytes

LOCK_FILE = "driver.lock"
HEARTBEAT_S = 15.0
STALE_AFTER_S = 90.0


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22); '' where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]


def _holder() -> dict[str, Any]:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "pid_start": _start_time(pid), "since": time.time(),
            "heartbeat": time.time()}  # fmt: skip


def process_alive(host: str, pid: int | str, pid_start: str = "") -> bool | None:
    """Whether process ``pid`` on ``host`` still runs; None when ``host`` is another machine (nothing to ask).

    The one check behind the lock and ``motiontune status``. A pid that exists but belongs to another user
    counts as alive; with ``pid_start`` (``_start_time`` when it was recorded), a reused pid does not. ``pid``
    is read as an int only on this host: another host's record is never parsed.
    """
    if host != socket.gethostname():
        return None
    pid = int(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not pid_start or _start_time(pid) in ("", pid_start)


def holder_alive(info: dict[str, Any], now: float | None = None) -> bool:
    """Whether the process named in a lock still holds it."""
    alive = process_alive(info.get("host", ""), info.get("pid", 0), info.get("pid_start") or "")
    if alive is not None:
        return alive
    now = time.time() if now is None else now
    return now - float(info.get("heartbeat", 0)) < STALE_AFTER_S


def _read(path: str) -> dict[str, Any] | None:
    data = read_bytes(path)
    if data is None:
        return None
    try:
        info = json.loads(data)
    except json.JSONDecodeError:
        return {}  # being written: treat as held, with no details
    return info if isinstance(info, dict) else {}


def _create(path: str, info: dict[str, Any]) -> bool:
    """Write the lock unless one exists; True when this process now holds it."""
    data = json.dumps(info).encode()
    if is_uri(path):
        if read_bytes(path) is not None:
            return False
        write_bytes(path, data)
        return True
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return True


def _remove(path: str) -> None:
    fs, p = filesystem(path)
    with contextlib.suppress(FileNotFoundError, OSError):
        fs.delete_file(p)


def _refusal(experiment: str, doing: str, info: dict[str, Any]) -> ExperimentError:
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(info.get("since", 0)))) if info else "?"
    who = f"pid {info.get('pid', '?')} on {info.get('host', '?')}, since {since}" if info else "another process"
    return ExperimentError(
        f"{experiment}: another motiontune {info.get('doing', 'driver') if info else 'driver'} is running on it "
        f"({who}); wait for it to end or stop it, then run {doing} again (a lock whose process died is taken over)"
    )


@contextlib.contextmanager
def experiment_lock(experiment: str, doing: str) -> Iterator[None]:
    """Hold the experiment's driver lock for the block; ``doing`` names the command (``resume``) in messages."""
    path = join(experiment, LOCK_FILE)
    me = {**_holder(), "doing": doing}
    if not _create(path, me):
        info = _read(path)
        if info is not None and (info == {} or holder_alive(info)):
            raise _refusal(experiment, doing, info)
        _remove(path)  # its holder is gone
        if not _create(path, me):
            raise _refusal(experiment, doing, _read(path) or {})
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_S):
            with contextlib.suppress(OSError):
                write_bytes(path, json.dumps({**me, "heartbeat": time.time()}).encode())

    thread = threading.Thread(target=beat, name="motiontune-lock-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
        if (_read(path) or {}).get("pid") == me["pid"] and (_read(path) or {}).get("host") == me["host"]:
            _remove(path)
