"""``[runners.docker]`` keys reach the nested podman the way gitlab-runner sends them.

Two runners are added to the session container's config.toml (the runner's working
copy) and picked up by the runner's own config reload (commands/multi.go
``checkConfig``: a changed file is loaded again within 3 s), so the session container
is not restarted; the file is written back as it was afterwards. One runner sets keys
podman applies inside the job (ulimit, tmpfs, shm_size, cap_drop, sysctls, group_add,
security_opt, oom_score_adjust); the other sets cpu and memory limits. A job of the
session's own runner, queued with them, prints the same values without any key set.

What cannot be asserted on every host: cpu and memory limits need cgroups in the
nested podman, which pipglr enables only where the outer container has cgroup v2
(guest/podmansetup.py). Without them podman refuses any resource limit at create
("cannot specify resource limits when cgroups are disabled"), so the limited job fails
there, and passes with memory.max/cpu.max set where nested cgroups exist. Which case
holds is read from the podman setup unit's journal; whether the kernel enforces the
limits is not tested.
"""

from __future__ import annotations

import time
import tomllib
from collections.abc import Iterator
from typing import Any

import pytest

from pipglr import layout
from tests.fakegitlab.ctl import Client
from tests.harness import gitlab
from tests.harness.joblog import JobLog
from tests.image.conftest import Pipglr, queue
from tests.standin.gitlab_runner import tomlwriter

pytestmark = [pytest.mark.image, pytest.mark.slow]

APPLIED_TOKEN, LIMITED_TOKEN = gitlab.AUTH_TOKENS[3:5]
APPLIED: dict[str, Any] = {
    "ulimit": {"nofile": "2048:4096"},
    "tmpfs": {"/scratch": "rw,size=16m,mode=1777"},
    "shm_size": 32 << 20,
    "cap_drop": ["CHOWN"],
    "sysctls": {"net.ipv4.tcp_keepalive_time": "600"},
    "group_add": ["4242"],
    "security_opt": ["no-new-privileges"],
    "oom_score_adjust": 100,
}
LIMITED: dict[str, Any] = {"memory": "256m", "cpus": "1.5"}
#: Prints what a job sees, one ``name=value`` line each.
SHOW = [
    'echo "nofile=$(ulimit -n):$(ulimit -Hn)"',
    'echo "scratch=$(awk \'$2 == "/scratch" {print $3, $4}\' /proc/mounts)"',
    "echo \"shm=$(df -k /dev/shm | awk 'NR == 2 {print $2}')\"",
    "echo \"capeff=$(awk '/^CapEff/ {print $2}' /proc/self/status)\"",
    "echo \"nonewprivs=$(awk '/^NoNewPrivs/ {print $2}' /proc/self/status)\"",
    'echo "groups=$(id -G)"',
    'echo "keepalive=$(cat /proc/sys/net/ipv4/tcp_keepalive_time)"',
    'echo "oomadj=$(cat /proc/self/oom_score_adj)"',
]
SHOW_LIMITS = [
    'echo "memory.max=$(cat /sys/fs/cgroup/memory.max 2>&1)"',
    'echo "cpu.max=$(cat /sys/fs/cgroup/cpu.max 2>&1)"',
]
CAP_CHOWN = 1 << 0


def write_config(pipglr: Pipglr, text: str) -> None:
    """Rewrite the runner's working config.toml in place, as user runner."""
    path = str(layout.RUNNER_STATE_CONFIG)
    pipglr.outer.exec(
        pipglr.name, "sh", "-c", f'cat > "{path}"', user=layout.RUNNER.name, input=text
    )


def reloads(pipglr: Pipglr) -> int:
    """How often the runner said "Configuration loaded" in this boot."""
    return pipglr.journal(layout.RUNNER_SERVICE_UNIT).count("Configuration loaded")


def wait_reload(pipglr: Pipglr, before: int, timeout: float = 30) -> None:
    """Poll until the runner loaded its config once more than ``before``."""
    deadline = time.monotonic() + timeout
    while reloads(pipglr) <= before:
        assert time.monotonic() < deadline, "the runner did not reload its config.toml"
        time.sleep(0.5)


def extra_runner(
    base: dict[str, Any], name: str, token: str, keys: dict[str, Any]
) -> dict[str, Any]:
    """The session runner's entry with another name, token and ``[runners.docker]`` keys."""
    entry = {k: v for k, v in base.items() if k not in ("id", "token_obtained_at",
                                                        "token_expires_at")}  # fmt: skip
    return entry | {"name": name, "token": token, "docker": base["docker"] | keys}


def for_runner(gitlab: Client, pipglr: Pipglr, token: str, name: str, script: list[str]) -> int:
    """Queue a job (the test image) that only the runner of ``token`` may take."""
    spec = {"name": name, "image": pipglr.image, "variables": {}, "script": script}
    return gitlab.add_job(spec | {"runner": token})


@pytest.fixture(scope="module")
def jobs(pipglr: Pipglr, fake_gitlab: Client) -> Iterator[dict[str, dict[str, Any]]]:
    """The two runners added, three jobs run side by side, the config restored."""
    original = pipglr.config_text
    document = tomllib.loads(original)
    base = document["runners"][0]
    runners = [
        extra_runner(base, "hostconfig-applied", APPLIED_TOKEN, APPLIED),
        extra_runner(base, "hostconfig-limited", LIMITED_TOKEN, LIMITED),
    ]
    before = reloads(pipglr)
    write_config(pipglr, tomlwriter.dumps(document | {"runners": [*document["runners"], *runners]}))
    try:
        wait_reload(pipglr, before)
        ids = {
            "applied": for_runner(fake_gitlab, pipglr, APPLIED_TOKEN, "applied", SHOW),
            "limited": for_runner(fake_gitlab, pipglr, LIMITED_TOKEN, "limited", SHOW_LIMITS),
            "plain": queue(fake_gitlab, pipglr, name="plain", script=SHOW),
        }
        records = {key: fake_gitlab.wait(job, timeout=300) for key, job in ids.items()}
    finally:
        before = reloads(pipglr)
        write_config(pipglr, original)
        wait_reload(pipglr, before)
    assert pipglr.config_text == original, "the session's config.toml is as it was"
    yield records


def values(record: dict[str, Any]) -> dict[str, str]:
    """The ``name=value`` lines a job printed."""
    found = {}
    for line in JobLog.of(record).output():
        name, sep, value = line.partition("=")
        if sep and name.replace(".", "").isalpha():
            found[name] = value
    return found


def describe(record: dict[str, Any]) -> str:
    """The job's state and trace tail for an assertion message."""
    return f"job {record['id']} {record['state']}: {JobLog.of(record).tail()}"


def test_applied_keys_reach_the_job(jobs: dict[str, Any]) -> None:
    """ulimit, tmpfs, shm_size, cap_drop, sysctls, group_add, no-new-privileges and
    oom_score_adjust are what the job sees; the session runner's job (no keys) sees
    podman's defaults instead."""
    applied, plain = jobs["applied"], jobs["plain"]
    assert applied["state"] == "success" and plain["state"] == "success", describe(applied)
    got, default = values(applied), values(plain)
    assert got["nofile"] == "2048:4096", got
    assert got["scratch"].startswith("tmpfs rw,") and "size=16384k" in got["scratch"], got
    assert got["shm"] == "32768", got
    assert int(got["capeff"], 16) & CAP_CHOWN == 0, f"CHOWN dropped: {got['capeff']}"
    assert got["nonewprivs"] == "1" and got["oomadj"] == "100", got
    assert "4242" in got["groups"].split() and got["keepalive"] == "600", got
    assert default["nofile"] != "2048:4096" and default["scratch"] == "", default
    assert default["shm"] != "32768" and int(default["capeff"], 16) & CAP_CHOWN, default
    assert default["nonewprivs"] == "0" and default["oomadj"] != "100", default
    assert "4242" not in default["groups"].split() and default["keepalive"] != "600", default


def test_cpu_and_memory_limits_as_far_as_nested_cgroups_exist(
    jobs: dict[str, Any], pipglr: Pipglr
) -> None:
    """With nested cgroups the limits are in the job's cgroup (memory.max 256 MiB,
    cpu.max 1.5 CPUs); without them podman refuses the create and the job fails as a
    runner system failure with podman's message in its trace."""
    limited = jobs["limited"]
    setup = pipglr.journal(layout.PODMAN_SETUP_UNIT)
    assert "nested cgroups: " in setup, setup[-1000:]
    if "nested cgroups: disabled" in setup:
        log = JobLog.of(limited)
        assert limited["state"] == "failed", describe(limited)
        assert log.contains("cannot specify resource limits when cgroups are disabled"), describe(
            limited
        )
        assert limited.get("failure_reason") == "runner_system_failure", describe(limited)
    else:
        got = values(limited)
        assert limited["state"] == "success", describe(limited)
        assert got["memory.max"] == str(256 << 20) and got["cpu.max"] == "150000 100000", got
