"""The image tests' HTTP probe tells an answer from a refusal (run here on loopback)."""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from tests.image.probes import PROBE, Outcome, outcomes


@pytest.fixture
def server() -> Iterator[int]:
    """An HTTP server on a free loopback port; its port."""
    httpd = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_probe_tells_answered_from_refused(server: int) -> None:
    """A listening port answers 200; a closed one is ``refused`` (ECONNREFUSED), not
    some other failure; each target gets one line."""
    argv = [sys.executable, "-c", PROBE, f"up=http://127.0.0.1:{server}/",
            f"down=http://127.0.0.1:{closed_port()}/"]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30)
    seen = outcomes(result.stdout.splitlines())
    assert seen.keys() == {"up", "down"}, result.stdout
    assert seen["up"].kind == "answered" and seen["up"].detail.startswith("200 "), seen
    assert seen["down"].kind == "refused", seen


def test_outcomes_reads_only_probe_lines() -> None:
    """Lines that are not the probe's are ignored; an answer without a body parses."""
    seen = outcomes(["$ python3 -c ...", "egress a answered 404", "egress b timed-out x", "x"])
    assert seen == {"a": Outcome("answered", "404"), "b": Outcome("timed-out", "x")}
