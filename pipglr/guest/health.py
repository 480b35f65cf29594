"""``ping``: is the nested podman's API socket answering? (a readiness probe)
``health``: has pipglr come up? (the container's health check, see pipglr.ops.quadlet)

Standard library only: this module runs in the image.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from pipglr import layout
from pipglr.errors import PipglrError


def ping(socket_path: Path = Path(str(layout.SOCKET_PATH)), timeout: float = 10) -> None:
    """Raise :class:`PipglrError` unless the API socket answers ``GET /_ping``."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(socket_path))
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: pipglr\r\n\r\n")
            reply = sock.recv(4096)
    except OSError as exc:
        raise PipglrError(f"podman API socket {socket_path}: {exc.strerror or exc}") from exc
    status = reply.split(b"\r\n", 1)[0].decode(errors="replace")
    if " 200 " not in status:
        raise PipglrError(f"podman API socket {socket_path} answered {status!r}")


#: How long the runner must have run without a restart to count as up: a runner that
#: cannot start is "active" for a moment between its restarts.
SETTLED_SECONDS = 5.0


def _unit(unit: str) -> dict[str, str]:
    shown = subprocess.run(
        ["systemctl", "show", unit, "--property",
         "ActiveState,SubState,ActiveEnterTimestampMonotonic"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return dict(line.partition("=")[::2] for line in shown.stdout.splitlines())


def health(now_monotonic: float | None = None) -> str:
    """Raise :class:`PipglrError` unless the runner has been running for
    :data:`SETTLED_SECONDS` and the nested API answers; what was found."""
    runner = _unit(layout.RUNNER_SERVICE_UNIT)
    if (runner.get("ActiveState"), runner.get("SubState")) != ("active", "running"):
        raise PipglrError(
            f"{layout.RUNNER_SERVICE_UNIT} is {runner.get('ActiveState', '?')}/"
            f"{runner.get('SubState', '?')}: `journalctl -u {layout.RUNNER_SERVICE_UNIT}` says why"
        )
    now = time.monotonic() if now_monotonic is None else now_monotonic
    since = int(runner.get("ActiveEnterTimestampMonotonic") or 0) / 1e6
    if now - since < SETTLED_SECONDS:
        raise PipglrError(f"{layout.RUNNER_SERVICE_UNIT} started {now - since:.1f} s ago")
    ping()
    return "healthy: the runner is running and the nested API answers"
