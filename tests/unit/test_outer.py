"""pipglr.outer: files that may hold tokens are private to the user."""

from __future__ import annotations

from pathlib import Path

from pipglr.outer import Outer


def test_write_file_and_private_dir_are_private(tmp_path: Path) -> None:
    """write_file creates 0600 files; private_dir creates 0700 directories."""
    outer = Outer("rootful", ("podman",))
    directory = outer.private_dir("pipglr-test-")
    try:
        assert directory.stat().st_mode & 0o777 == 0o700
        target = directory / "config.toml"
        outer.write_file(target, 'token = "glrt-x"\n')
        assert target.stat().st_mode & 0o777 == 0o600
        assert target.read_text() == 'token = "glrt-x"\n'
    finally:
        for child in directory.iterdir():
            child.unlink()
        directory.rmdir()
