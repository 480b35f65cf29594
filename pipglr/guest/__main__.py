"""``python3 -m pipglr.guest COMMAND``: see :mod:`pipglr.guest`."""

from __future__ import annotations

import sys

from pipglr.guest.cli import main

sys.exit(main())
