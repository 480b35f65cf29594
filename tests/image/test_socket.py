"""The Docker-compatible API socket: reachable by runner (and podman) only."""

from __future__ import annotations

import pytest

from pipglr import layout
from pipglr.ops.outer import DOCKER_CLI
from tests.image.conftest import Pipglr

pytestmark = [pytest.mark.image, pytest.mark.security]


def test_socket_owner_and_mode(pipglr: Pipglr) -> None:
    """The socket is podman:runner 0660 (systemd creates it for the service)."""
    sock = pipglr.host().file(str(layout.SOCKET_PATH))
    assert sock.is_socket
    assert (sock.user, sock.group, sock.mode) == ("podman", "runner", 0o660)


def test_socket_answers_runner(pipglr: Pipglr) -> None:
    """runner reaches the API: `docker version` names the podman engine."""
    result = pipglr.docker("version", "--format", "{{.Server.Version}}")
    assert result.stdout.strip().startswith("5."), result.stdout


def test_socket_refused_for_other_users(pipglr: Pipglr) -> None:
    """Any other non-root user (here: nobody) is refused by the socket's permissions."""
    result = pipglr.outer.exec(
        pipglr.name, DOCKER_CLI, "-H", layout.DOCKER_HOST, "version",
        user="nobody", check=False,
    )  # fmt: skip
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "permission denied" in output.lower() and str(layout.SOCKET_PATH) in output, output
