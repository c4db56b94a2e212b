"""``python -m tuner.cli``: the ``motiontune`` command."""

import sys

from tuner.cli import main

sys.exit(main())
