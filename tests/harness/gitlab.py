"""The fake GitLab (``tests/fakegitlab``) served on a test host for the engine tests.

It listens in its own network namespace (:mod:`tests.harness.netns`), so the
register label's throw-away container, the running pipglr container (either outer
mode) and the tests all reach the same coordinator, and nothing leaves this machine.
The image under test is built with ``GITLAB_URL`` = :data:`URL`.

It runs as a GitLab does by default: no Workhorse long polling (GitLab's
doc/ci/runners/long_polling.md: "not enabled by default"; ``--long-poll`` turns it
on) and the two-phase job commit for runners that advertise it (``--no-runner-ack``
turns that off). Long polling would not make the job tests faster: Workhorse ends a
held request with an empty 204 when a job comes, and the runner asks again at its
next ``check_interval`` tick, as it would have anyway (measured with the stand-in's
run loop, check_interval 1, 25 jobs: queued → picked median 0.60 s without, 0.59 s
with a 50 s long poll).
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
#: The benchmark's runners use these.
AUTH_TOKENS = (
    "glrt-pipglr-auth-token",
    "glrt-pipglr-second-runner",
    "glrt-pipglr-cli-token",
)
#: The engine suite runs as concurrent sets (:mod:`tests.harness.sets`) against one
#: fake GitLab, so a runner token a test registers or starts a runner with is its
#: set's own: two runners polling with one token would take each other's jobs.
SETS = ("rootful", "rootless", "none")
#: What a token is for: a second pipglr container's runner, ``pipglr register``'s, one
#: the runner may rotate (GitLab revokes the old one), and the two runners
#: tests/image/test_hostconfig.py adds to the session's config.toml, the privileged
#: variant's and the company-network container's (tests/image/test_companynet.py).
ROLES = (
    "second", "cli", "rotating", "applied", "limited", "privileged", "variant", "corpnet",
    "custom",
)  # fmt: skip
REGISTRATION_TOKEN = "GR1348941-pipglr-test-token"


def token(role: str, outer_set: str) -> str:
    """The authentication token for ``role`` in the set ``outer_set`` (a mode or ``none``)."""
    if role not in ROLES or outer_set not in SETS:
        raise ValueError(f"no test token for {role!r} in set {outer_set!r}")
    return f"glrt-pipglr-{role}-{outer_set}"


#: Every token the coordinator is started with.
ALL_TOKENS = (*AUTH_TOKENS, *(token(role, s) for role in ROLES for s in SETS))
#: The rotating token of each outer mode.
ROTATING_TOKENS = {mode: token("rotating", mode) for mode in SETS[:2]}


@contextmanager
def serving(
    log: Path, tokens: Sequence[str] = ALL_TOKENS, registration: str = REGISTRATION_TOKEN
) -> Iterator[Client]:
    """Create the test host, serve the coordinator in it, yield a client."""
    HOST.create()
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "tests.fakegitlab", "serve", "--host", HOST.address,
            "--port", str(PORT), "--registration-token", registration]  # fmt: skip
    for accepted in tokens:
        argv += ["--token", accepted]
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
