"""The fake GitLab (``tests/fakegitlab``) served on a test host for the engine tests.

It listens in its own network namespace (:mod:`tests.harness.netns`), so the
register label's throw-away container, the running pipglr container (either outer
mode) and the tests all reach the same coordinator, and nothing leaves this machine.
The image under test is built with ``GITLAB_URL`` = :data:`URL`.
"""

from __future__ import annotations

import ipaddress
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.fakegitlab.ctl import Client
from tests.harness.netns import TestHost

REPO = Path(__file__).resolve().parents[2]
HOST = TestHost("pipglr-gitlab", ipaddress.IPv4Network("10.199.77.0/30"))
PORT = 8080
URL = f"http://{HOST.address}:{PORT}/"
#: Tokens the coordinator accepts: authentication tokens (``glrt-``) as GitLab's UI
#: creates them, and one legacy registration token (exchanged for a ``glrt-`` one).
AUTH_TOKENS = (
    "glrt-pipglr-auth-token",
    "glrt-pipglr-second-runner",
    "glrt-pipglr-cli-token",
    # tests/image/test_hostconfig.py: two runners added to the session's config.toml
    "glrt-pipglr-hostconfig-applied",
    "glrt-pipglr-hostconfig-limited",
)
#: Tokens a test lets the runner rotate (GitLab revokes the old one): one per outer
#: mode, since the fake GitLab serves the whole session.
ROTATING_TOKENS = {"rootful": "glrt-pipglr-rotating-1", "rootless": "glrt-pipglr-rotating-2"}
REGISTRATION_TOKEN = "GR1348941-pipglr-test-token"


@contextmanager
def serving(
    log: Path, tokens: Sequence[str] = AUTH_TOKENS, registration: str = REGISTRATION_TOKEN
) -> Iterator[Client]:
    """Create the test host, serve the coordinator in it, yield a client."""
    HOST.create()
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "tests.fakegitlab", "serve", "--host", HOST.address,
            "--port", str(PORT), "--registration-token", registration]  # fmt: skip
    for token in (*tokens, *ROTATING_TOKENS.values()):
        argv += ["--token", token]
    with log.open("w") as out:
        process = subprocess.Popen(HOST.command(argv), cwd=REPO, stdout=out, stderr=out)
    client = Client(URL.rstrip("/"))
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                client.jobs()
                break
            except OSError as exc:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"fake GitLab did not start: {log.read_text()}") from exc
                time.sleep(0.2)
        yield client
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        HOST.remove()
