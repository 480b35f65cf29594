"""The runner service: config from the secret, the socket, clear config errors."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from pipglr import labels, layout
from pipglr.outer import Outer
from tests.image.conftest import TEST_IMAGE, Pipglr, dump_logs

pytestmark = [pytest.mark.image]


def _journal_until(pipglr: Pipglr, text: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    journal = ""
    while time.monotonic() < deadline:
        journal = pipglr.journal(layout.RUNNER_SERVICE_UNIT)
        if text in journal:
            break
        time.sleep(1)
    return journal


def test_runner_reads_its_config_from_the_secret(pipglr: Pipglr) -> None:
    """The config check passed and gitlab-runner started on the secret's path."""
    started = f"Starting multi-runner from {layout.CONFIG_PATH}"
    journal = _journal_until(pipglr, started)
    assert started in journal, journal[-2000:]
    assert "config.toml has runners" in journal


def test_runner_user_reaches_the_socket(pipglr: Pipglr) -> None:
    """As the runner service's user, the API socket answers /_ping."""
    result = pipglr.outer.exec(
        pipglr.name, str(layout.PYTHON), "-m", layout.GUEST_MODULE, "ping",
        user=layout.RUNNER.name, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(
    bool(os.environ.get("PIPGLR_RUNNER_BINARY")),
    reason="the real gitlab-runner contacts its docker host only when a job runs",
)
def test_runner_talks_to_the_docker_host_it_names(pipglr: Pipglr) -> None:
    """The stand-in runner reached the docker host named in config.toml."""
    line = f"docker host {layout.DOCKER_HOST} answers"
    assert line in _journal_until(pipglr, line)


def test_runner_runs_as_runner(pipglr: Pipglr) -> None:
    """gitlab-runner runs as user runner."""
    host = pipglr.host()
    users = {p.user for p in host.process.filter(comm="gitlab-runner")} or {
        p.user for p in host.process.filter(args=f"{layout.RUNNER_BINARY}")
    }
    assert users == {layout.RUNNER.name}, users


@pytest.fixture
def broken(pipglr: Pipglr, request: pytest.FixtureRequest) -> Iterator[tuple[Outer, str]]:
    """A second container from the run label with a malformed or missing config."""
    outer = pipglr.outer
    kind = request.param
    name = f"pipglr-{kind}"
    secret = None
    if kind == "malformed":
        secret = "pipglr-malformed-config"
        outer.run("secret", "rm", secret, check=False)
        outer.run("secret", "create", secret, "-", input='concurrent = 1\n[[runners]\nurl = "x"\n')
    outer.run("rm", "--force", "--ignore", name)
    outer.run(*labels.second_instance(pipglr.settings, TEST_IMAGE, name, secret)[1:])
    try:
        yield outer, name
    finally:
        dump_logs(outer, name)
        outer.run("rm", "--force", "--ignore", name, check=False)
        outer.run("volume", "rm", "--force", f"{name}-{layout.STORAGE_VOLUME}",
                  f"{name}-{layout.CACHE_VOLUME}", check=False)  # fmt: skip
        if secret:
            outer.run("secret", "rm", secret, check=False)


@pytest.mark.destructive
@pytest.mark.parametrize(
    ("broken", "message"),
    [("malformed", "is not valid TOML"), ("missing", "secret is not mounted")],
    indirect=["broken"],
)
def test_bad_config_fails_runner_with_clear_message(
    broken: tuple[Outer, str], message: str
) -> None:
    """A malformed/missing config.toml: the runner unit fails once with one clear line."""
    outer, name = broken
    deadline = time.monotonic() + 60
    state = ""
    while time.monotonic() < deadline:
        state = outer.exec(name, "systemctl", "is-failed", layout.RUNNER_SERVICE_UNIT,
                           check=False).stdout.strip()  # fmt: skip
        if state == "failed":
            break
        time.sleep(1)
    assert state == "failed", f"runner unit state {state!r}"
    journal = outer.exec(name, "journalctl", "-b", "-o", "cat", "-u", layout.RUNNER_SERVICE_UNIT,
                         "--no-pager").stdout  # fmt: skip
    errors = [line for line in journal.splitlines() if line.startswith("pipglr:")]
    assert errors and message in errors[0], journal
    assert "podman secret create config.toml" in errors[0]
    # Not restarted in a loop: a config error is final until the secret is fixed.
    starts = journal.count("Starting pipglr-runner.service")
    assert starts == 1, journal
