"""The `pipglr` operator CLI against the session's pipglr, in both outer modes.

These tests change the session's config.toml secret and recreate its container;
the module fixture puts the original secret back and leaves pipglr running again
(without limits) for the tests that follow.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipglr import layout
from pipglr.ops import metricsport
from pipglr.ops.cli import HOST_IDS_REFUSAL
from pipglr.ops.operate import Operator
from tests.fakegitlab.ctl import Client
from tests.harness import gitlab
from tests.harness.joblog import JobLog, describe
from tests.image.conftest import (
    SESSION_ENV,
    TEST_TOKEN,
    Pipglr,
    queue,
    session_env,
    trace_until,
    wait_ready,
)

pytestmark = [pytest.mark.image, pytest.mark.destructive]

Cli = Callable[..., subprocess.CompletedProcess[str]]
#: `pipglr up` keeps the session's environment (the egress allow-list).
UP_ENV = [arg for env in SESSION_ENV for arg in ("--env", env)]


@pytest.fixture(scope="module")
def cli(pipglr: Pipglr) -> Iterator[Cli]:
    """Run `pipglr ARGS` as the outer mode's user; restore secret and container after."""
    operator = Operator(pipglr.outer, pipglr.image)
    original = operator.read_config()

    def run(
        *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "pipglr.ops.cli", "--image", pipglr.image,
                "--podman", shlex.join(pipglr.outer.podman), *args]  # fmt: skip
        result = subprocess.run(argv, input=input, capture_output=True, text=True,
                                check=False, timeout=900)  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(f"pipglr {shlex.join(args)}: {result.stdout}{result.stderr}")
        return result

    try:
        yield run
    finally:
        operator.down()
        if operator.read_config() != original:
            operator.replace_config(original)
        pipglr.outer.run("secret", "rm", layout.TOKEN_SECRET, check=False)
        pipglr.outer.run("secret", "create", layout.TOKEN_SECRET, "-", input=TEST_TOKEN)
        metrics = metricsport.parse(str(pipglr.metrics_address))
        operator.up(env=session_env(pipglr.outer), metrics=metrics)
        wait_ready(pipglr.outer, pipglr.name)


def config_of(cli: Cli) -> dict[str, object]:
    return tomllib.loads(cli("config", "show", "--show-secrets").stdout)


def test_register_adds_runners_to_the_secret(cli: Cli, pipglr: Pipglr) -> None:
    """`pipglr register --count 2` (token on stdin) appends two runners to the secret."""
    before = len(config_of(cli)["runners"])  # type: ignore[arg-type]
    token = gitlab.token("cli", pipglr.outer.mode)
    result = cli("register", "--count", "2", "--description", "cli-runner",
                 input=f"{token}\n")  # fmt: skip
    assert token not in result.stdout + result.stderr
    runners = config_of(cli)["runners"]
    assert isinstance(runners, list) and len(runners) == before + 2
    assert [r["name"] for r in runners[-2:]] == ["cli-runner", "cli-runner"]
    secrets = pipglr.outer.run("secret", "ls", "--format", "{{.Name}}").stdout.split()
    assert layout.TOKEN_SECRET not in secrets, "the token secret outlived registration"


def test_register_with_a_token_gitlab_refuses_changes_nothing(cli: Cli) -> None:
    """A token the GitLab does not know: register fails, the config secret stays."""
    before = cli("config", "show", "--show-secrets").stdout
    result = cli("register", "--description", "nope", input="glrt-unknown-token\n",
                 check=False)  # fmt: skip
    assert result.returncode != 0, result.stdout
    assert "Failed to verify the runner" in result.stderr, result.stderr
    assert "glrt-unknown-token" not in result.stdout + result.stderr
    assert cli("config", "show", "--show-secrets").stdout == before


def test_config_set_round_trip(cli: Cli) -> None:
    """`config set concurrent=3` changes the secret; `config get` reads it back."""
    assert cli("config", "get", "concurrent").stdout.strip() != "3"
    result = cli("config", "set", "concurrent=3")
    assert "backup:" in result.stdout and "restart to apply" in result.stdout
    assert cli("config", "get", "concurrent").stdout.strip() == "3"


def test_config_show_redacts_tokens(cli: Cli, pipglr: Pipglr) -> None:
    """`config show` hides tokens unless --show-secrets."""
    shown = cli("config", "show").stdout
    tokens = pipglr.runner_tokens()
    assert tokens and all(t.startswith("glrt-") for t in tokens), tokens
    assert "REDACTED" in shown and not any(t in shown for t in tokens), shown
    assert all(t in cli("config", "show", "--show-secrets").stdout for t in tokens)


def test_config_set_rejects_breaking_values(cli: Cli) -> None:
    """A value pipglr cannot run with is refused; the secret is unchanged."""
    before = cli("config", "show", "--show-secrets").stdout
    result = cli("config", "set", 'runners.0.docker.host="tcp://1.2.3.4:2375"', check=False)
    assert result.returncode != 0 and result.stderr.startswith("pipglr: ")
    assert cli("config", "show", "--show-secrets").stdout == before


def up_flags(pipglr: Pipglr) -> list[str]:
    """`pipglr up`'s flags here: root must accept sharing the host's ids 1-999; the
    metrics port published where the session's was (the monitoring tests scrape it)."""
    metrics = ["--metrics", str(pipglr.metrics_address)]
    ids = ["--allow-host-ids"] if pipglr.outer.mode == "rootful" else []
    return [*UP_ENV, *ids, *metrics]


#: The limits `up` is given; the pids limit is not podman's default (2048), so only
#: the flag can have put it on the container.
LIMIT_FLAGS = ("--cpus", "1", "--memory", "1g", "--pids", "3000")
LIMITS = {"cpus": 1.0, "memory": 2**30, "pids": 3000}


def podman_can_limit(pipglr: Pipglr) -> bool:
    """Whether the outer podman may use the cpu, memory and pids cgroup controllers
    (``podman info``): root's always; a rootless user's only on cgroup v2 with them
    delegated (what `pipglr doctor` checks)."""
    shown = pipglr.outer.run("info", "--format", "{{.Host.CgroupControllers}}").stdout
    return {"cpu", "memory", "pids"} <= set(shown.strip().strip("[]").split())


@pytest.mark.security
def test_up_with_limits_status_and_down(cli: Cli, pipglr: Pipglr) -> None:
    """down, `up --cpus 1 --memory 1g --pids 3000`, status, down.

    Run by root, `up` without --allow-host-ids is refused in one line and creates
    nothing. Whether podman can apply limits is decided before, from the host
    (:func:`podman_can_limit`), not from what `up` did. If it can, the container is
    created with the limits: its inspect and `status` show them. That proves podman
    was given and recorded them, not that the kernel enforces them (this test reads
    no cgroup). If it cannot (this CI host's rootless podman: cgroup v2, nothing
    delegated), `up` must fail with the one-line explanation and leave no container
    behind; `up` without limits then works.
    """
    cli("down")
    if pipglr.outer.mode == "rootful":
        refused = cli("up", *UP_ENV, check=False)
        assert refused.returncode == 2 and refused.stderr == f"pipglr: {HOST_IDS_REFUSAL}\n"
        exists = pipglr.outer.run("container", "exists", layout.CONTAINER_NAME, check=False)
        assert exists.returncode != 0, "a refused up created the container"
    flags = up_flags(pipglr)
    can_limit = podman_can_limit(pipglr)
    limited = cli("up", *flags, *LIMIT_FLAGS, check=False)
    if can_limit:
        assert limited.returncode == 0, f"podman can limit, yet: {limited.stderr}"
        inspect = pipglr.outer.run(
            "container", "inspect", "--format",
            "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}",
            layout.CONTAINER_NAME,
        ).stdout.split()  # fmt: skip
        assert inspect == ["1000000000", str(2**30), "3000"], inspect
    else:
        assert limited.returncode != 0, "podman cannot limit here, yet up succeeded"
        assert limited.stderr.startswith("pipglr: podman could not apply"), limited.stderr
        assert "Delegate=" in limited.stderr and len(limited.stderr.splitlines()) == 1
        exists = pipglr.outer.run("container", "exists", layout.CONTAINER_NAME, check=False)
        assert exists.returncode != 0, "a failed up left a container behind"
        cli("up", *flags)
    pipglr.outer.wait_for(layout.CONTAINER_NAME,
                          ["systemctl", "is-active", layout.RUNNER_SERVICE_UNIT])  # fmt: skip
    status = json.loads(cli("status", "--json").stdout)
    assert status["container"] == "running"
    if can_limit:
        assert status["limits"] == LIMITS, status["limits"]
    assert status["units"][layout.RUNNER_SERVICE_UNIT] == "active"
    assert isinstance(status["runners"], int) and status["runners"] >= 1
    assert isinstance(status["storage_bytes"], int)
    # `up` chose the outer options config.toml needs: no runner asks for privileged
    # jobs, so the container is not privileged (the other way round: unit test_privilege).
    assert status["privileged"] == [] and status["outer"] == "unprivileged", status
    # `up --metrics` published the exporter's port there; status carries its facts.
    assert status["metrics_published"] == pipglr.metrics_address, status
    assert status["metrics"]["nested"]["api_up"] is True, status["metrics"]
    assert "removed" in cli("down").stdout
    gone = cli("status", check=False)
    assert gone.returncode == 3 and "absent" in gone.stdout


def test_down_during_a_job_lets_it_finish(cli: Cli, pipglr: Pipglr, fake_gitlab: Client) -> None:
    """`pipglr down` while a job runs: the runner's graceful stop lets the job finish
    and report success before the container goes; `up` brings the runner back."""
    if pipglr.outer.run("container", "exists", pipglr.name, check=False).returncode != 0:
        cli("up", *up_flags(pipglr))
    wait_ready(pipglr.outer, pipglr.name)
    script = ["echo started", "sleep 8", "echo finished after down began"]
    job_id = queue(fake_gitlab, pipglr, name="outlives-down", script=script)
    trace_until(fake_gitlab, job_id, "started")
    began = time.monotonic()
    down = cli("down")
    took = time.monotonic() - began
    job = fake_gitlab.job(job_id)
    assert job["state"] == "success", describe(job)
    assert JobLog.of(job).has_line("finished after down began"), describe(job)
    assert "removed" in down.stdout
    assert took >= 4, f"down returned after {took:.1f}s: it did not wait for the job"
    exists = pipglr.outer.run("container", "exists", pipglr.name, check=False)
    assert exists.returncode != 0, "down left the container"


def test_quadlet_units_pass_podmans_generator(cli: Cli, pipglr: Pipglr) -> None:
    """`pipglr quadlet` writes units that podman's quadlet generator turns into a service."""
    with tempfile.TemporaryDirectory(prefix="quadlet-", dir="/var/tmp") as tmp:
        directory = Path(tmp)
        directory.chmod(0o755)
        accept = ["--allow-host-ids"] if pipglr.outer.mode == "rootful" else []
        cli("quadlet", "--dir", tmp, "--cpus", "2", *accept)
        for path in directory.iterdir():
            path.chmod(0o644)
        generated = pipglr.outer.run(
            "run", "--rm", "--volume", f"{tmp}:/etc/containers/systemd:ro",
            "--entrypoint", "/usr/libexec/podman/quadlet", pipglr.image, "-dryrun",
        )  # fmt: skip
    sections: dict[str, list[str]] = {}
    for line in generated.stdout.splitlines():
        if line.startswith("---") and line.endswith("---"):
            sections[line.strip("-")] = []
        elif sections:
            sections[list(sections)[-1]].append(line)
    assert "pipglr.service" in sections, generated.stdout + generated.stderr
    service = sections["pipglr.service"]
    exec_start = next(line for line in service if line.startswith("ExecStart="))
    for option in (
        "--name pipglr",
        "--secret config.toml,uid=1000,gid=1000,mode=0400",
        "--device /dev/fuse",
        "--device /dev/net/tun",
        "--cpus=2",
        "--systemd=always",
    ):
        assert option in exec_start, option  # fmt: skip
    assert "--privileged" not in exec_start, "no runner asks for privileged jobs"
    assert "pipglr-storage:/home/podman/.local/share/containers" in exec_start
    assert "pipglr-storage-volume.service" in sections
