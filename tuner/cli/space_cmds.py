"""``space show`` / ``space sample``: the search spaces, without Ray."""

from __future__ import annotations

import argparse
import json

from tuner.cli.common import Parser

# --- space -------------------------------------------------------------------------------


def _space_show(a: argparse.Namespace) -> int:
    from search_spaces.sampling import space_table
    from search_spaces.spec import load_space

    print(space_table(load_space(a.space)))
    return 0


def _space_sample(a: argparse.Namespace) -> int:
    from search_spaces.sampling import sample_configs
    from search_spaces.spec import load_space
    from trainer_core.config_load import load_config
    from trainer_core.errors import ConfigError

    if a.n < 1:
        raise ConfigError(f"-n is {a.n}, but must be >= 1")
    space, base = load_space(a.space), load_config(a.config)
    for cfg in sample_configs(space, a.n, a.seed, base):
        print(json.dumps(cfg.to_dict()), flush=True)
    return 0


def add_space(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("space", help="show search spaces and sample configs from them", description="Search spaces.")
    ssub = p.add_subparsers(dest="space_cmd", required=True, parser_class=Parser)
    space_help = "a shipped space (default, small, wide) or a space .json file (default: default)"
    show = ssub.add_parser("show", help="the space's dimensions, bounds, scales and fixed values")
    show.add_argument("--space", default="default", help=space_help)
    show.set_defaults(func=_space_show)
    sample = ssub.add_parser("sample", help="N full trainer configs, one JSON object per line")
    sample.add_argument("--space", default="default", help=space_help)
    sample.add_argument("-n", type=int, default=1, help="how many configs (default 1)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--config", help="base config (default: the packaged exp_phase_mpl.json)")
    sample.set_defaults(func=_space_sample)


# --- sweep / resume / export ---------------------------------------------------------------
