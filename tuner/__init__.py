"""Ray Tune glue: the search, its verification, results, report, export, the local cluster, and the CLI.

Sub-packages and modules, top to bottom; each imports only from those below it, never upwards:

- ``cli``: the ``motiontune`` command (argument parsing, printing);
- ``pipeline``: the user's jobs, launch, resume and verify (a search, then a verification);
  ``cluster``: a local Ray cluster for ``motiontune cluster`` (beside ``pipeline``);
- ``report``: ``motiontune report`` and ``export``, from a finished experiment;
- ``verify``: re-training the finalists on fresh seeds, and the verified ranking;
- ``search``: the Ray Tune search (trainable, sampler, scheduler, stopping, progress);
- ``experiment``: the experiment directory (files, metadata, results tables, status, lock).

Importing this package does not import Ray; the modules that need it do.
"""
