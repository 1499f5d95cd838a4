"""``python -m poolswap``: the ``poolswap`` command line (see :mod:`poolswap.cli`)."""

import sys

from .cli import main

sys.exit(main())
