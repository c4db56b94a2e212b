"""The verification trainable: one finalist config re-trained on one fresh seed, full length.

Tune's ``config`` is ``{"finalist": label, "seed": s}``; the finalists' params
come bound with ``tune.with_parameters`` (None: the base config as it is). The
trainer's seed is the config key ``seed``. The last epoch's report also
carries the run's test-split metrics (``test/...``, when the config has a
``test_split``) and, with ``--verify-data``, the best model's metrics on that
folder (``verify_data/...``, ``trainer_core.evaluate.offline.evaluate_checkpoint``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from search_spaces.mapping import params_to_config
from search_spaces.spec import space_from_dict
from trainer_core.config import TrainConfig
from trainer_core.config_load import config_from_dict
from trainer_core.train import checkpoint as ckpt
from trainer_core.train.summary import summary_test_metrics
from tuner.search.trainable import run_trial
from tuner.verify.stats import TEST_PREFIX, VERIFY_DATA_PREFIX


def verify_trial(
    config: dict[str, Any],
    *,
    base: dict[str, Any],
    space: dict[str, Any],
    metric: str,
    mode: str,
    finalists: dict[str, dict[str, Any] | None],
    data: str | None,
    epochs: int | None = None,
) -> None:
    """``epochs``: the experiment's (the base and each finalist's config rescaled to it, as in the search)."""
    params = finalists[config["finalist"]]
    seed = int(config["seed"])

    def build(trial_keys: dict[str, Any]) -> TrainConfig:
        base_cfg = config_from_dict({**base, **trial_keys, "seed": seed}, "verification base config")
        if params is None:
            return base_cfg.with_epochs(epochs) if epochs is not None else base_cfg
        return params_to_config(space_from_dict(space, "experiment space"), dict(params), base_cfg, epochs)

    def extras(run_dir: Path, summary: dict[str, Any]) -> dict[str, Any]:
        out = summary_test_metrics(summary, TEST_PREFIX)
        if data is not None:
            out.update(verify_data_metrics(run_dir / ckpt.BEST_NAME, data))
        return out

    run_trial(build, metric, mode, final_extras=extras)


def verify_data_metrics(checkpoint: Path, data: str) -> dict[str, float]:
    """The model's overall metrics on ``data`` as ``verify_data/<metric>``; copy-last-frame's as ``.../copy_last/``."""
    from trainer_core.evaluate.offline import PRIMARY_BASELINE, evaluate_checkpoint

    overall = evaluate_checkpoint(checkpoint, data)["overall"]
    out = {VERIFY_DATA_PREFIX + k: float(v) for k, v in overall["model"].items() if v is not None}
    copy_last = overall["baselines"].get(PRIMARY_BASELINE, {})
    out.update({f"{VERIFY_DATA_PREFIX}copy_last/{k}": float(v) for k, v in copy_last.items() if v is not None})
    return out
