"""pipglr.ops.outer: files that may hold tokens are private to the user."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipglr.errors import PipglrError
from pipglr.ops.outer import Outer


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


def test_a_failing_podman_command_is_one_line_with_the_output_attached() -> None:
    """A failed command raises a PipglrError (the CLI prints `pipglr: ...`) whose
    message is one line ending with podman's last output line; the whole output is an
    exception note, for tracebacks and test reports."""
    script = "echo first line; echo 'Error: no such secret' >&2; exit 125"
    outer = Outer("rootless", ("sh", "-c", script, "podman"))
    with pytest.raises(PipglrError) as info:
        outer.run("secret", "inspect", "config.toml")
    message = str(info.value)
    assert "\n" not in message and message.endswith("exited 125: Error: no such secret")
    assert "podman secret inspect config.toml" in message and "(rootless)" in message
    assert "first line" in "\n".join(getattr(info.value, "__notes__", []))
    assert outer.run("secret", "ls", check=False).returncode == 125  # check=False: no error
