"""The gitlab-runner stand-in for engine tests: :func:`build_standin` packs the
``gitlab_runner`` package (standard library only) into one executable zipapp.

The zipapp is stored uncompressed so the package docstring's marker bytes
(``pipglr/build/runnerbin.py`` ``STANDIN_MARKER``) appear in the file and release builds
refuse it.
"""

from __future__ import annotations

import shutil
import stat
import tempfile
import zipapp
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent / "gitlab_runner"
INTERPRETER = "/usr/bin/python3"
MARKER = b"PIPGLR-TEST-STANDIN"
_MAIN = """# The stand-in's entry point: exit with gitlab_runner.cli.main()'s status.
import sys

from gitlab_runner.cli import main

sys.exit(main())
"""


def build_standin(target_dir: Path) -> Path:
    """Write ``target_dir/gitlab-runner`` (executable zipapp, ``#!/usr/bin/python3``) and
    return its path."""
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / "gitlab-runner"
    with tempfile.TemporaryDirectory(prefix="standin-") as staging:
        root = Path(staging)
        shutil.copytree(PACKAGE, root / "gitlab_runner",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))  # fmt: skip
        (root / "__main__.py").write_text(_MAIN)
        zipapp.create_archive(root, target, interpreter=INTERPRETER, compressed=False)
    target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    if MARKER not in target.read_bytes():
        raise AssertionError(f"{target} lacks the stand-in marker")
    return target
