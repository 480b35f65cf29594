"""The runner service: config from the secret, the socket, clear config errors."""

from __future__ import annotations

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


def test_runner_runs_on_its_working_copy_of_the_secret(pipglr: Pipglr) -> None:
    """The config check passed and gitlab-runner started on the copy in its state dir."""
    started = f"Starting multi-runner from {layout.RUNNER_STATE_CONFIG}"
    journal = _journal_until(pipglr, started)
    assert started in journal, journal[-2000:]
    assert "config.toml has runners" in journal
    secret = pipglr.outer.exec(pipglr.name, "cat", str(layout.CONFIG_PATH),
                               user=layout.RUNNER.name).stdout  # fmt: skip
    assert pipglr.config_text == secret, "no token was rotated: the copy is the secret"


def test_runner_state_is_private_to_runner(pipglr: Pipglr) -> None:
    """The state dir (config copy, system id) is runner's, 0700; podman cannot read it."""
    state = pipglr.host().file(str(layout.RUNNER_STATE_DIR))
    assert (state.user, state.group, state.mode) == ("runner", "runner", 0o700)
    system_id = layout.RUNNER_STATE_DIR / ".runner_system_id"
    _journal_until(pipglr, "Starting multi-runner")
    assert pipglr.host().file(str(system_id)).exists, "gitlab-runner writes its system id"
    denied = pipglr.outer.exec(pipglr.name, "cat", str(layout.RUNNER_STATE_CONFIG),
                               user=layout.PODMAN.name, check=False)  # fmt: skip
    assert denied.returncode != 0 and "Permission denied" in denied.stderr, denied


def test_runner_user_reaches_the_socket(pipglr: Pipglr) -> None:
    """As the runner service's user, the API socket answers /_ping."""
    result = pipglr.outer.exec(
        pipglr.name, str(layout.PYTHON), "-m", layout.GUEST_MODULE, "ping",
        user=layout.RUNNER.name, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


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
