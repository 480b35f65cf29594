"""``[runners.docker]`` keys reach the nested podman the way gitlab-runner sends them.

Two runners are added to the session container's config.toml (the runner's working
copy) and picked up by the runner's own config reload (commands/multi.go
``checkConfig``: a changed file is loaded again within 3 s), so the session container
is not restarted; the file is written back as it was afterwards. One runner sets
ulimit, tmpfs, shm_size, cap_drop, sysctls, group_add, security_opt and
oom_score_adjust (not privileged); the other sets cpu and memory limits. A job of the
session's own runner, queued with them, prints the same values without any key set.

What podman does not apply: ``ulimit`` (podman 5.4's compat API drops ``Ulimits`` for
a rootless engine, as the nested one is), and cpu/memory limits where the nested
job has no memory/cpu cgroup controllers: on this CI host (cgroup v1) the jobs of
neither outer mode have them, and the job runs without the limits. What a job with
those controllers shows is asserted but not observed here; whether a kernel enforces
limits is not tested at all.
"""

from __future__ import annotations

import re
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

APPLIED: dict[str, Any] = {
    # podman gives a privileged container every capability whatever cap_drop says
    "privileged": False,
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
#: A runner asking for privileged jobs in the default (unprivileged) outer container.
PRIVILEGED: dict[str, Any] = {"privileged": True}
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
    'echo "controllers=$(cat /sys/fs/cgroup/cgroup.controllers 2>/dev/null)"',
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
    mode = pipglr.outer.mode
    applied_token, limited_token = gitlab.token("applied", mode), gitlab.token("limited", mode)
    privileged_token = gitlab.token("privileged", mode)
    runners = [
        extra_runner(base, "hostconfig-applied", applied_token, APPLIED),
        extra_runner(base, "hostconfig-limited", limited_token, LIMITED),
        extra_runner(base, "hostconfig-privileged", privileged_token, PRIVILEGED),
    ]
    before = reloads(pipglr)
    write_config(pipglr, tomlwriter.dumps(document | {"runners": [*document["runners"], *runners]}))
    try:
        wait_reload(pipglr, before)
        ids = {
            "applied": for_runner(fake_gitlab, pipglr, applied_token, "applied", SHOW),
            "limited": for_runner(fake_gitlab, pipglr, limited_token, "limited", SHOW_LIMITS),
            "privileged": for_runner(
                fake_gitlab, pipglr, privileged_token, "wants-privileged", ["echo the-script-ran"]
            ),  # fmt: skip
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
        if sep and re.fullmatch(r"[a-z][a-z0-9.]*", name):
            found[name] = value
    return found


def describe(record: dict[str, Any]) -> str:
    """The job's state and trace tail for an assertion message."""
    return f"job {record['id']} {record['state']}: {JobLog.of(record).tail()}"


def test_applied_keys_reach_the_job(jobs: dict[str, Any]) -> None:
    """tmpfs, shm_size, cap_drop, sysctls, group_add, no-new-privileges and
    oom_score_adjust are what the job sees; the session runner's job (no keys) sees
    podman's defaults instead."""
    applied, plain = jobs["applied"], jobs["plain"]
    assert applied["state"] == "success" and plain["state"] == "success", describe(applied)
    got, default = values(applied), values(plain)
    checks = {
        "tmpfs /scratch": got["scratch"].startswith("tmpfs rw,")
        and "size=16384k" in got["scratch"],
        "no /scratch by default": default["scratch"] == "",
        "shm 32 MiB": got["shm"] == "32768" != default["shm"],
        "CHOWN dropped": not int(got["capeff"], 16) & CAP_CHOWN,
        "CHOWN by default": bool(int(default["capeff"], 16) & CAP_CHOWN),
        "no_new_privs": (got["nonewprivs"], default["nonewprivs"]) == ("1", "0"),
        "oom_score_adj": got["oomadj"] == "100" != default["oomadj"],
        "group 4242": "4242" in got["groups"].split() and "4242" not in default["groups"].split(),
        "sysctl": got["keepalive"] == "600" != default["keepalive"],
    }
    failed = [name for name, ok in checks.items() if not ok]
    assert not failed, f"{failed}: with keys {got}, without {default}"


def test_ulimit_is_not_applied_by_podman_5_4(jobs: dict[str, Any]) -> None:
    """ulimit: the Go client sends ``Ulimits`` [{nofile 1024 2048}], but podman 5.4's
    compat API drops Ulimits for a rootless engine (pkg/api/handlers/compat
    containers_create.go ``if !rootless.IsRootless()``; podman issue #25881, fixed by
    PR #25908 after 5.4): the job sees the same limit as a job without the key."""
    got, default = values(jobs["applied"]), values(jobs["plain"])
    assert got["nofile"] == default["nofile"] != "2048:4096", (got, default)


def test_cpu_and_memory_limits_as_far_as_the_job_has_controllers(jobs: dict[str, Any]) -> None:
    """memory and cpus: podman accepts the create and the job runs. On this CI host no
    job has the memory and cpu controllers (rootful outer: no cgroup v2 at all, and the
    rootless nested podman drops Memory and the CPU quota: "Resource limits are not
    supported and ignored on cgroups V1 rootless systems", a create warning the runner
    does not print; rootless outer: cgroup v2 without those controllers), so no limit
    can be read back. Where a job has them, memory.max and cpu.max must show the
    limits (not observed here)."""
    limited = jobs["limited"]
    got = values(limited)
    assert limited["state"] == "success", describe(limited)
    controllers = got["controllers"].split()
    if "memory" not in controllers and "cpu" not in controllers:
        missing = [got[n].endswith("No such file or directory") for n in ("memory.max", "cpu.max")]
        assert all(missing), (got, describe(limited))
    else:
        assert got["memory.max"] == str(256 << 20) and got["cpu.max"] == "150000 100000", got


@pytest.mark.security
def test_a_privileged_runner_fails_its_job_in_the_default_outer(jobs: dict[str, Any]) -> None:
    """A runner in config.toml asks for privileged jobs, the container was started as the
    default build's run label says (not privileged): the job fails when its first
    container starts, with the kernel's refusal to mount a read-write sysfs (crun's
    message) — not some other error — and its script never runs; the session's own
    runner's job passes beside it (control). In the privileged build the same job runs
    (test_variants.py, test_security.py)."""
    job, plain = jobs["privileged"], jobs["plain"]
    assert plain["state"] == "success", describe(plain)
    log = JobLog.of(job)
    assert job["state"] == "failed", describe(job)
    assert log.contains("mount `sysfs` to `sys`: Operation not permitted"), describe(job)
    assert not log.has_line("the-script-ran"), describe(job)
