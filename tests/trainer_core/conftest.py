"""A model trained for about a minute on the bundled mocap, shared by the generation, preview and
long-rollout tests."""

from __future__ import annotations

import pytest

from trainer_core.data.skeleton import Skeleton


def without_toes(sk: Skeleton) -> tuple[Skeleton, list[int]]:
    """Another skeleton: ``sk`` without its toe joints, and the indices of the joints it keeps."""
    keep = [j for j, b in enumerate(sk.bones) if not b.startswith("Toes")]
    remap = {j: k for k, j in enumerate(keep)}
    other = Skeleton(
        bones=tuple(sk.bones[j] for j in keep),
        parents=tuple(-1 if sk.parents[j] < 0 else remap[sk.parents[j]] for j in keep),
        offsets=sk.offsets[keep],
        feet={"L": ("Foot_L",), "R": ("Foot_R",)},
    )
    return other, keep

# Small but trained: it follows the turn command's direction over its first second (see test_generate).
GENERATION_OVERRIDES = {
    "epochs": 10,
    "tf_end_epoch": 7,
    "steps_per_epoch": 20,
    "batch": 16,
    "hidden_dim": 64,
    "lr": 0.001,
}


@pytest.fixture(scope="session")
def generation_run(tmp_path_factory):
    """``(run folder, summary)`` of the generation tests' model (one torch CPU thread: tiny batches on a
    busy 2-core machine train many times faster on one)."""
    import torch

    from tests.conftest import tiny_overrides
    from trainer_core.config_load import config_from_dict, load_config
    from trainer_core.train.loop import fit

    out = tmp_path_factory.mktemp("generation") / "run"
    cfg = config_from_dict({**load_config().to_dict(), **tiny_overrides(**GENERATION_OVERRIDES)}, "generation test")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        summary = fit(cfg, out, log=lambda _: None)
    finally:
        torch.set_num_threads(threads)
    return out, summary
