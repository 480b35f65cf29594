"""The runner service: config from the secret, the socket, clear config errors."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from pipglr import layout
from pipglr.guest import runnerstate
from pipglr.ops.outer import Outer
from tests.fakegitlab.ctl import Client
from tests.harness.joblog import JobLog, describe
from tests.image.conftest import Pipglr, queue, second_pipglr, trace_until

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
    # No token was rotated: the copy is the secret plus what the unit derives at every
    # start (here only the metrics listen address: no network settings, no flag moved).
    assert pipglr.config_text == runnerstate.with_listen_address(secret)
    assert f'listen_address = "{layout.RUNNER_LISTEN_ADDRESS}"' in pipglr.config_text


@pytest.mark.security
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


#: A config.toml that is not TOML (an unclosed table header).
MALFORMED = 'concurrent = 1\n[[runners]\nurl = "x"\n'


@pytest.fixture
def broken(pipglr: Pipglr, request: pytest.FixtureRequest) -> Iterator[tuple[Outer, str]]:
    """A second container from the run label with a malformed or missing config."""
    kind = request.param
    with second_pipglr(pipglr, f"pipglr-{kind}") as second:
        second.start(MALFORMED if kind == "malformed" else None, ready=False)
        yield pipglr.outer, second.name


@pytest.mark.destructive
@pytest.mark.parametrize(
    ("broken", "message"),
    [("malformed", "is not valid TOML"), ("missing", "secret is not mounted")],
    indirect=["broken"],
)
@pytest.mark.security
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


BROKEN_API = "/run/systemd/system/pipglr-podman.service.d/pipglr-test-broken.conf"


@pytest.fixture
def failed_api(pipglr: Pipglr) -> Iterator[None]:
    """The nested API service fails to start (a runtime drop-in), runner restarted."""

    def sh(script: str) -> None:
        pipglr.outer.exec(pipglr.name, "sh", "-c", script)

    sh(f"systemctl stop {layout.RUNNER_SERVICE_UNIT} {layout.PODMAN_SERVICE_UNIT}; "
       f"mkdir -p $(dirname {BROKEN_API}); "
       f"printf '[Service]\\nExecStart=\\nExecStart=/bin/false\\n' > {BROKEN_API}; "
       "systemctl daemon-reload; "
       f"systemctl start --no-block {layout.RUNNER_SERVICE_UNIT}")  # fmt: skip
    try:
        yield
    finally:
        sh(f"rm -f {BROKEN_API}; systemctl daemon-reload; systemctl reset-failed; "
           f"systemctl start --no-block {layout.RUNNER_SERVICE_UNIT}")  # fmt: skip
        pipglr.outer.wait_for(pipglr.name, ["systemctl", "is-active", layout.RUNNER_SERVICE_UNIT])


@pytest.mark.security
def test_runner_takes_no_jobs_while_the_api_has_failed(
    pipglr: Pipglr, fake_gitlab: Client, failed_api: None
) -> None:
    """With the nested API failing, the runner does not start and a queued job waits;
    once the API works again the same job runs (positive control)."""
    job_id = queue(fake_gitlab, pipglr, name="waits", script=["true"])
    time.sleep(12)  # several runner start attempts (RestartSec=5s)
    state = pipglr.outer.exec(pipglr.name, "systemctl", "is-active", layout.RUNNER_SERVICE_UNIT,
                              check=False).stdout.strip()  # fmt: skip
    assert state != "active", "the runner started without a working API"
    assert fake_gitlab.job(job_id)["state"] == "pending", "a job was taken without an API"
    assert "podman API socket" in pipglr.journal(layout.RUNNER_SERVICE_UNIT)
    pipglr.outer.exec(pipglr.name, "sh", "-c", f"rm -f {BROKEN_API}; systemctl daemon-reload; "
                      "systemctl reset-failed")  # fmt: skip
    assert fake_gitlab.wait(job_id, timeout=180)["state"] == "success"


@pytest.mark.security
def test_api_restart_during_a_job_ends_it_and_the_next_job_runs(
    pipglr: Pipglr, fake_gitlab: Client
) -> None:
    """Restarting the nested API service mid-job breaks the job's attach stream: the
    runner stops that stage's container and reports the job failed — promptly, never
    hanging — and the next job runs on the restarted service."""
    job_id = queue(fake_gitlab, pipglr, name="api-restart",
                   script=["echo started", "sleep 30", "echo survived"])  # fmt: skip
    trace_until(fake_gitlab, job_id, "started")
    pipglr.outer.exec(pipglr.name, "systemctl", "restart", layout.PODMAN_SERVICE_UNIT)
    restarted = time.monotonic()
    record = fake_gitlab.wait(job_id, timeout=120)
    print(
        f"api restart: job {record['state']} {time.monotonic() - restarted:.1f}s later, "
        f"exit {record.get('exit_code')} {record.get('failure_reason')}"
    )
    assert record["state"] == "failed", describe(record)
    # The runner stops the stage's container (SIGTERM): the job's script ends with 143.
    assert (record["exit_code"], record["failure_reason"]) == (143, "script_failure")
    assert not JobLog.of(record).contains("survived"), describe(record)
    after = queue(fake_gitlab, pipglr, name="after-restart", script=["true"])
    assert fake_gitlab.wait(after, timeout=180)["state"] == "success"
