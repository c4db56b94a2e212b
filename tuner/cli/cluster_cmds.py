"""``cluster up`` / ``cluster down``: a multi-node Ray cluster on this machine."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tuner.cli.common import Parser

DEFAULT_CLUSTER_DIR = "results/local-cluster"


def _cluster_up(a: argparse.Namespace) -> int:
    from trainer_core.errors import ConfigError
    from tuner.cluster import ENV_FILE, LocalCluster

    try:
        resources = json.loads(a.worker_resources) if a.worker_resources else {}
    except json.JSONDecodeError as e:
        raise ConfigError(f"--worker-resources {a.worker_resources!r}: not JSON ({e.msg})") from None
    if not isinstance(resources, dict) or not all(isinstance(v, (int, float)) for v in resources.values()):
        raise ConfigError(f"--worker-resources {a.worker_resources!r}: must be a JSON object of numbers")
    if a.dashboard_port is not None and not a.dashboard:
        raise ConfigError("--dashboard-port needs --dashboard")
    cluster = LocalCluster(a.dir, workers=a.workers, cpus_per_node=a.cpus, head_cpus=a.head_cpus,
                           worker_resources=resources, port=a.port or 0, dashboard=a.dashboard,
                           dashboard_port=a.dashboard_port or 0)  # fmt: skip
    address = cluster.start()
    env_file = Path(a.dir) / ENV_FILE
    print(f"local Ray cluster at {address}: head + {a.workers} worker(s), {a.cpus:g} CPU each")
    if cluster.dashboard_url:
        print(f"dashboard and job server at {cluster.dashboard_url}")
    print(f"for `ray status` and `ray job` in a shell: source {env_file}   # sets " +
          " ".join(f"{k}={v}" for k, v in cluster.shell_env().items()))  # fmt: skip
    if cluster.dashboard_url:
        print(f"sweep on it as a job: ray job submit --address {cluster.dashboard_url} -- motiontune sweep --address "
              "auto --storage <shared path> --shared-storage ...")  # fmt: skip
    else:
        print(f"sweep on it: motiontune sweep --address {address} --storage <shared path> --shared-storage ...")
    print(f"stop it:     motiontune cluster down --dir {a.dir}")
    return 0


def _cluster_down(a: argparse.Namespace) -> int:
    from tuner.cluster import LocalCluster

    cluster = LocalCluster.from_state(a.dir)
    n = len(cluster.nodes)
    cluster.stop()
    print(f"stopped the {n} node(s) of the local cluster at {cluster.address}")
    return 0


def add_cluster(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cluster", help="a multi-node Ray cluster on this machine, for trying things out",
                       description="Start or stop a local multi-node Ray cluster (ray start).")  # fmt: skip
    csub = p.add_subparsers(dest="cluster_cmd", required=True, parser_class=Parser)
    up = csub.add_parser("up", help="start a head and N workers with `ray start`")
    up.add_argument("--dir", default=DEFAULT_CLUSTER_DIR, help=f"state and logs (default {DEFAULT_CLUSTER_DIR})")
    up.add_argument("--workers", type=int, default=2)
    up.add_argument("--cpus", type=float, default=1, help="CPUs each node declares")
    up.add_argument("--head-cpus", type=float, help="CPUs the head declares (default: --cpus)")
    up.add_argument("--worker-resources", metavar="JSON", help="custom resources per worker, e.g. '{\"gpu_like\": 1}'")
    up.add_argument("--port", type=int, help="the head's GCS port (default: a free one)")
    up.add_argument("--dashboard", action="store_true",
                    help="also run Ray's dashboard and job server on the head, for `ray job submit` (needs the "
                         "cluster extra: pip install -e \".[cluster]\")")  # fmt: skip
    up.add_argument("--dashboard-port", type=int,
                    help="the dashboard's port on 127.0.0.1 (default: 8265 when free, else a free one)")  # fmt: skip
    up.set_defaults(func=_cluster_up)
    down = csub.add_parser("down", help="stop exactly the nodes `cluster up` started")
    down.add_argument("--dir", default=DEFAULT_CLUSTER_DIR)
    down.set_defaults(func=_cluster_down)
