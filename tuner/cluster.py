"""A real multi-node Ray cluster on this machine, for trying things out and for tests.

A head and N workers, each a ``ray start --block`` process in its own process
group with its own temp dir, declaring its CPUs and, optionally, custom
resources (``{"gpu_like": 1}``) that stand in for GPUs. With ``dashboard``, the
head also runs Ray's dashboard and its job server (``ray job submit``; needs
``ray[default]``, the ``cluster`` extra). ``ray.env`` in the cluster's folder
holds what a shell needs for ``ray status`` and ``ray job`` against it: token
auth, the cluster's address and the job server's. ``stop`` ends exactly
those process groups (SIGTERM, then SIGKILL) and any process whose command line
still names one of the cluster's temp dirs; other Ray clusters on the machine
are left alone. The state file (``cluster.json``) lets ``motiontune cluster
down`` stop a cluster that ``motiontune cluster up`` started.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from trainer_core.errors import MotiontuneError
from trainer_core.io_utils import atomic_write_json
from tuner.experiment.lock import process_alive
from tuner.search.stop import JOB_STOP_WAIT_S

STATE_FILE = "cluster.json"
ENV_FILE = "ray.env"
START_TIMEOUT_S = 180  # a loaded 2-core machine takes over a minute to start a node
DEFAULT_DASHBOARD_PORT = 8265  # Ray's own default, the one the cluster guide's `ray job` commands use


class ClusterError(MotiontuneError):
    """The local cluster could not be started or stopped as asked."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def dashboard_available() -> bool:
    """Ray's dashboard and job server come with ``ray[default]`` (aiohttp and friends), not ``ray[tune]``."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("aiohttp", "aiohttp_cors", "opencensus"))


def ray_env() -> dict[str, str]:
    """Node processes and clients of a local cluster authenticate with the user's Ray token; a job stopped with
    ``ray job stop`` gets ``JOB_STOP_WAIT_S`` to save its state (``tuner.search.stop``)."""
    env = dict(os.environ)
    env.setdefault("RAY_AUTH_MODE", "token")
    env.setdefault("RAY_JOB_STOP_WAIT_TIME_S", JOB_STOP_WAIT_S)
    env.pop("RAY_ADDRESS", None)
    return env


def ensure_token() -> None:
    """Ray's token auth needs ``~/.ray/auth_token`` (or ``RAY_AUTH_TOKEN[_PATH]``); make one if there is none."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return
    if os.environ.get("RAY_AUTH_TOKEN_PATH"):
        path = Path(os.environ["RAY_AUTH_TOKEN_PATH"])
        if not path.exists():  # `ray get-auth-token --generate` writes ~/.ray/auth_token only
            import secrets

            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_hex(32))  # what Ray's own generator makes
            path.chmod(0o600)
        return
    if (Path.home() / ".ray" / "auth_token").exists():
        return
    ray_bin = Path(sys.executable).with_name("ray")
    subprocess.run([str(ray_bin), "get-auth-token", "--generate"], check=True, capture_output=True, env=ray_env())


@dataclass
class Node:
    role: str
    pid: int
    temp_dir: str
    log: str
    cpus: float
    resources: dict[str, float] = field(default_factory=dict)


@dataclass
class LocalCluster:
    root: Path
    workers: int = 2
    cpus_per_node: float = 1
    head_cpus: float | None = None
    worker_resources: dict[str, float] = field(default_factory=dict)
    port: int = 0
    dashboard: bool = False
    dashboard_port: int = 0  # 0: Ray's 8265 when it is free, else a free one
    nodes: list[Node] = field(default_factory=list)
    address: str = ""
    dashboard_url: str = ""

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        if self.workers < 0:
            raise ClusterError(f"--workers is {self.workers}, but must be >= 0")
        if not self.cpus_per_node > 0:
            raise ClusterError(f"--cpus is {self.cpus_per_node}, but must be > 0")

    # --- start -----------------------------------------------------------------------------

    def _start_node(self, role: str, cpus: float, resources: dict[str, float], extra: list[str]) -> Node:
        k = len(self.nodes)
        temp_dir = Path("/tmp") / f"mt-cluster-{os.getpid()}-{int(time.time())}-{k}"  # short: socket paths are capped
        log = self.root / f"{role}-{k}.log"
        cmd = [
            str(Path(sys.executable).with_name("ray")), "start", "--block", f"--num-cpus={cpus:g}",
            f"--temp-dir={temp_dir}", f"--dashboard-agent-listen-port={free_port()}", "--disable-usage-stats",
            *([f"--resources={json.dumps(resources)}"] if resources else []), *extra,
        ]  # fmt: skip
        with open(log, "w") as f:
            proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=ray_env(), start_new_session=True)
        node = Node(role, proc.pid, str(temp_dir), str(log), cpus, resources)
        self.nodes.append(node)
        self._save()
        self._wait_started(node, proc)
        return node

    def _wait_started(self, node: Node, proc: subprocess.Popen) -> None:
        deadline = time.time() + START_TIMEOUT_S
        while time.time() < deadline:
            text = Path(node.log).read_text(errors="replace")
            if "Ray runtime started" in text:
                return
            if proc.poll() is not None:
                tail = " | ".join(text.strip().splitlines()[-3:])
                raise ClusterError(f"the {node.role} node exited while starting ({tail}); see {node.log}")
            time.sleep(0.2)
        raise ClusterError(f"the {node.role} node did not start within {START_TIMEOUT_S}s; see {node.log}")

    def start(self) -> str:
        """Start the head, then the workers; returns the cluster's address. Stops what it started on failure."""
        if (self.root / STATE_FILE).exists():
            raise ClusterError(f"{self.root}: already holds a running local cluster; stop it first (cluster down)")
        head_flags = self._dashboard_flags() if self.dashboard else ["--include-dashboard=false"]
        self.root.mkdir(parents=True, exist_ok=True)
        ensure_token()
        port = self.port or free_port()
        try:
            head_cpus = self.head_cpus if self.head_cpus is not None else self.cpus_per_node
            self._start_node("head", head_cpus, {}, ["--head", f"--port={port}", *head_flags])
            if self.dashboard:
                self._read_dashboard_url()
            ip = self._node_ip(self.nodes[0])
            self.address = f"{ip}:{port}"
            self._save()
            for _ in range(self.workers):
                self._start_node("worker", self.cpus_per_node, self.worker_resources, [f"--address={self.address}"])
            self.wait_for_nodes(1 + self.workers)
            if self.dashboard:
                self._wait_for_job_server()
            self._write_env()
        except BaseException:
            self.stop()
            raise
        return self.address

    def _dashboard_flags(self) -> list[str]:
        if not dashboard_available():
            raise ClusterError("--dashboard needs Ray's dashboard, which ray[tune] lacks; install the cluster extra: "
                               "pip install -e \".[cluster]\"")  # fmt: skip
        port = self.dashboard_port
        if not port:
            port = DEFAULT_DASHBOARD_PORT if port_is_free(DEFAULT_DASHBOARD_PORT) else free_port()
        elif not port_is_free(port):
            raise ClusterError(f"--dashboard-port {port} is in use on 127.0.0.1; give another, or leave it out for a "
                               "free one")  # fmt: skip
        self.dashboard_url = f"http://127.0.0.1:{port}"
        return ["--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={port}"]

    def _read_dashboard_url(self) -> None:
        """The address the head printed for ``ray job``: Ray moves to the next port if ours was taken meanwhile."""
        log = Path(self.nodes[0].log)
        deadline = time.time() + 10
        while time.time() < deadline:
            m = re.search(r"RAY_API_SERVER_ADDRESS='(http://[^']+)'", log.read_text(errors="replace"))
            if m:
                self.dashboard_url = m.group(1)
                return
            time.sleep(0.2)

    def _wait_for_job_server(self) -> None:
        """Until the job server answers (the dashboard comes up after the head reports it started)."""
        deadline = time.time() + START_TIMEOUT_S
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{self.dashboard_url}/api/version", timeout=5):
                    return
            except urllib.error.HTTPError:  # it answers, if only to ask for the token
                return
            except OSError:
                time.sleep(0.5)
        logs = f"{self.nodes[0].temp_dir}/session_latest/logs/dashboard.log"
        raise ClusterError(f"the dashboard at {self.dashboard_url} did not answer in {START_TIMEOUT_S}s; see {logs}")

    def shell_env(self) -> dict[str, str]:
        """What a shell exports so that ``ray status`` and ``ray job ...`` reach this cluster."""
        env = {"RAY_AUTH_MODE": "token", "RAY_ADDRESS": self.address}
        if self.dashboard_url:
            env["RAY_API_SERVER_ADDRESS"] = self.dashboard_url  # what `ray job` uses when --address is left out
        for name in ("RAY_AUTH_TOKEN_PATH",):  # a token passed by value is not written to a file
            if os.environ.get(name):
                env[name] = os.environ[name]
        return env

    def _write_env(self) -> None:
        lines = ["# `source` this file: `ray status` and `ray job ...` then talk to the local cluster"]
        lines += [f"export {k}={shlex.quote(v)}" for k, v in self.shell_env().items()]
        (self.root / ENV_FILE).write_text("\n".join(lines) + "\n")

    @staticmethod
    def _node_ip(node: Node) -> str:
        m = re.search(r"Local node IP: (\S+)", Path(node.log).read_text(errors="replace"))
        return m.group(1) if m else "127.0.0.1"

    def wait_for_nodes(self, n: int) -> None:
        """Until ``ray status`` counts ``n`` active nodes."""
        deadline = time.time() + START_TIMEOUT_S
        ray_bin = str(Path(sys.executable).with_name("ray"))
        while time.time() < deadline:
            out = subprocess.run([ray_bin, "status", f"--address={self.address}"], capture_output=True, text=True,
                                 env=ray_env()).stdout  # fmt: skip
            active = out.split("Active:", 1)[-1].split("Pending:", 1)[0] if "Active:" in out else ""
            if len(re.findall(r"node_[0-9a-f]+", active)) >= n:
                return
            time.sleep(0.5)
        raise ClusterError(f"the cluster at {self.address} did not reach {n} nodes within {START_TIMEOUT_S}s")

    # --- stop ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop exactly the nodes this cluster started, newest first."""
        for node in reversed(self.nodes):
            _kill_group(node.pid, signal.SIGTERM)
        deadline = time.time() + 15
        while time.time() < deadline and any(process_alive(socket.gethostname(), n.pid) for n in self.nodes):
            time.sleep(0.2)
        for node in self.nodes:
            _kill_group(node.pid, signal.SIGKILL)
        for pid in _pids_naming([n.temp_dir for n in self.nodes]):  # processes that left the group
            _kill(pid, signal.SIGKILL)
        for node in self.nodes:
            shutil.rmtree(node.temp_dir, ignore_errors=True)
        (self.root / STATE_FILE).unlink(missing_ok=True)
        (self.root / ENV_FILE).unlink(missing_ok=True)
        self.nodes = []

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- state -----------------------------------------------------------------------------

    def _save(self) -> None:
        state = {"address": self.address, "dashboard_url": self.dashboard_url, "nodes": [asdict(n) for n in self.nodes]}
        atomic_write_json(self.root / STATE_FILE, state)

    @classmethod
    def from_state(cls, root: Path) -> LocalCluster:
        path = Path(root) / STATE_FILE
        if not path.is_file():
            raise ClusterError(f"{root}: no local cluster started here ({STATE_FILE} not found)")
        state = json.loads(path.read_text())
        cluster = cls(Path(root), workers=0)
        cluster.address = state["address"]
        cluster.dashboard_url = state.get("dashboard_url", "")
        cluster.nodes = [Node(**n) for n in state["nodes"]]
        return cluster


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _pids_naming(fragments: list[str]) -> list[int]:
    """PIDs whose command line contains one of ``fragments``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(f in cmdline for f in fragments):
            found.append(int(entry.name))
    return found
