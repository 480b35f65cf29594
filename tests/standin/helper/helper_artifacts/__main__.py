"""``python3 -m helper_artifacts artifacts-uploader|artifacts-downloader ARGS...``."""

from __future__ import annotations

import sys

from .commands import main

sys.exit(main(sys.argv[1:]))
