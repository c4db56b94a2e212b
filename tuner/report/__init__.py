"""What a finished sweep gives the user: its report and its exported configs.

Imports ``verify``, ``search`` and ``experiment``.

``sweep_report`` (``motiontune report``: plots, ``index.html``, a summary), ``plots`` (the verification's plot),
``previews`` (the best trial's preview clip), ``export`` (``motiontune export``: the best or verified configs).
"""
