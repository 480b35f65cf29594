"""``ping``: is the nested podman's API socket answering? (a readiness probe)

Standard library only: this module runs in the image.
"""

from __future__ import annotations

import socket
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
