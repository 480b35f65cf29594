"""``python -m gitlab_runner`` (also the zipapp's entry point)."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
