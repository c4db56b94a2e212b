"""Is an experiment's storage reachable from every node of the cluster?

Trials write their results and checkpoints to the storage path from whichever
node runs them. On a cluster of several nodes that must be shared storage: a
pyarrow-filesystem URI (s3://, gs://, abfs://, hdfs://...) or a path on a
network filesystem every node mounts. A path on this node's local disk would
leave each trial's files on the node that ran it, so that is refused up front.
"""

from __future__ import annotations

from pathlib import Path

from tuner.experiment.files import ExperimentError, is_uri

NETWORK_FILESYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "glusterfs", "ceph", "beegfs", "9p", "wekafs",
    "panfs", "afs", "orangefs", "fuse.glusterfs", "fuse.ceph", "fuse.s3fs", "fuse.gcsfuse", "fuse.juicefs",
    "fuse.sshfs", "fuse.rclone", "fuse.mountpoint-s3", "fuse.goofys", "fuse.blobfuse", "fuse.cephfs",
})  # fmt: skip


def filesystem_type(path: str, mounts: str = "/proc/mounts") -> str:
    """The type of the filesystem ``path`` lives on (longest mount point that contains it)."""
    target = Path(path).resolve()
    while not target.exists() and target != target.parent:
        target = target.parent
    best, fstype = "", "unknown"
    try:
        lines = Path(mounts).read_text().splitlines()
    except OSError:
        return fstype
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        mount = parts[1].replace("\\040", " ")
        inside = str(target) == mount or str(target).startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, fstype = mount, parts[2]
    return fstype


def check_storage(storage: str, n_nodes: int, vouched_shared: bool = False) -> None:
    """Refuse a node-local storage path when the cluster has more than one node."""
    if n_nodes <= 1 or is_uri(storage) or vouched_shared:
        return
    fstype = filesystem_type(storage)
    if fstype in NETWORK_FILESYSTEMS:
        return
    raise ExperimentError(
        f"--storage {storage} is on this node's local disk ({fstype}), but the Ray cluster has {n_nodes} nodes "
        "and trials on the others could not write there; use s3://..., gs://... or a path every node mounts "
        f"(NFS ...), or pass --shared-storage if {storage} is mounted on every node"
    )
