"""The runner's token stays where it belongs: in the config secret and the runner's
private state, nowhere a job, the podman user or the host's podman metadata shows it.

A first part of the security suite (the hostile-job issue adds network, isolation
and fault tests in this module).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
import subprocess
import time
from pathlib import Path

import pytest

from pipglr import layout, subids
from pipglr.guest import hostids
from tests.fakegitlab.ctl import Client
from tests.harness.joblog import JobLog, describe
from tests.image.conftest import LOG_DIR, Pipglr, queue, second_pipglr, trace_until
from tests.image.probes import PROBE, outcomes

pytestmark = [pytest.mark.image, pytest.mark.security]

#: A runner token's shape (grep -E): the prefix and at least one token character.
GLRT = "glrt-[A-Za-z0-9_-]+"
#: Everywhere a hostile job looks for runner tokens besides environments.
SEARCHED = (layout.CONFIG_PATH, layout.RUNNER_STATE_CONFIG, layout.SOCKET_DIR,
            "/etc", "/run", "/var", "/builds", "/cache")  # fmt: skip
#: What a hostile job tries, each step marked so the log shows it ran. Every ``glrt-``
#: string it finds goes to /tmp/found; it prints only their sha256 digests and count
#: (GitLab's log masks tokens and masked variables: the strings themselves would
#: show as ``[MASKED]``, found or not).
SNOOP = [
    f"echo snoop:env; env | grep -aoE '{GLRT}' >> /tmp/found || true",
    "echo snoop:procs; cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n'"
    f" | grep -aoE '{GLRT}' >> /tmp/found || true",
    f"echo snoop:paths; grep -rsaohE -D skip '{GLRT}' {' '.join(map(str, SEARCHED))}"
    " >> /tmp/found || true",
    f"echo snoop:socket; ls -la {layout.SOCKET_DIR} || true",
    "echo snoop:digests; sort -u /tmp/found | while read -r found; do"
    " printf '%s' \"$found\" | sha256sum | sed 's/ .*//; s/^/token-digest /'; done",
    'echo "token-count $(sort -u /tmp/found | wc -l)"',
    "echo snoop:done",
]


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def container_log(pipglr: Pipglr) -> str:
    """``podman logs``: the container's console (both streams)."""
    result = pipglr.outer.run("logs", pipglr.name)
    return result.stdout + result.stderr


def test_token_is_in_no_podman_metadata_log_or_environment(pipglr: Pipglr) -> None:
    """Positive control: the runner's working copy holds the token. It is in none of:
    container and image inspect, image history, the container's log, its PID 1
    environment, an exec's environment, the whole journal of the boot."""
    token = pipglr.runner_tokens()[0]
    assert token.startswith("glrt-") and token in pipglr.config_text
    outer, name = pipglr.outer, pipglr.name
    places = {
        "container inspect": outer.run("container", "inspect", name).stdout,
        "image inspect": outer.run("image", "inspect", pipglr.image).stdout,
        "image history": outer.run("history", "--no-trunc", pipglr.image).stdout,
        "container log": container_log(pipglr),
        "PID 1 environment": outer.exec(name, "cat", "/proc/1/environ").stdout,
        "exec environment": outer.exec(name, "env").stdout,
        "journal": outer.exec(name, "journalctl", "-b", "--no-pager", "-o", "cat").stdout,
    }
    assert all(places.values()), [k for k, v in places.items() if not v]
    leaks = [place for place, text in places.items() if token in text]
    assert not leaks, f"the runner token shows in: {', '.join(leaks)}"


def test_a_job_cannot_find_the_runner_token(pipglr: Pipglr, fake_gitlab: Client) -> None:
    """A default job (as registered: unprivileged) cannot find the runner token; a
    privileged one of the privileged build neither (test_variants.py). See
    :func:`assert_no_token_found`."""
    assert "privileged = false" in pipglr.config_text, pipglr.config_text
    assert_no_token_found(pipglr, fake_gitlab)


def assert_no_token_found(pipglr: Pipglr, fake_gitlab: Client) -> None:
    """A job of ``pipglr``'s runner collects every ``glrt-`` string in its environment,
    every process environment it can read, the secret and state paths, the socket
    directory, /etc, /run, /var, /builds and /cache, and prints the sha256 of each: all steps ran,
    and the runner token's digest is not among them. Positive controls in the same job:
    two masked decoy tokens, one in its environment and one in a file variable (written
    under /builds), show by their digests, so the search works and masking does not
    hide what it found."""
    token = pipglr.runner_tokens()[0]
    decoys = {kind: f"glrt-decoy{kind}{secrets.token_urlsafe(18)}" for kind in ("env", "file")}
    job_id = queue(fake_gitlab, pipglr, name="snoop", script=SNOOP, variables={
        "DECOY_TOKEN": {"value": decoys["env"], "masked": True},
        "DECOY_FILE": {"value": decoys["file"], "masked": True, "file": True},
    })  # fmt: skip
    job = fake_gitlab.wait(job_id, timeout=240)
    assert job["state"] == "success", describe(job)
    log = JobLog.of(job)
    steps = ("env", "procs", "paths", "socket", "digests", "done")
    assert all(log.has_line(f"snoop:{step}") for step in steps), describe(job, 3000)
    found = {m[1] for m in log.matches(r"^token-digest ([0-9a-f]{64})$")}
    count = log.search(r"^token-count (\d+)$")
    assert count and int(count[1]) == len(found), describe(job, 3000)
    missing = [kind for kind, decoy in decoys.items() if digest(decoy) not in found]
    assert not missing, f"positive control: the {missing} decoy not found: {describe(job)}"
    assert digest(token) not in found, "the job found the runner token"


#: How a job's connection to another per-build network's address fails (the nested
#: podman's networks do not route to each other): see :mod:`tests.image.probes`.
OTHER_NETWORK = "timed-out"
#: Wait for the service ``db`` (retrying while it starts), print its address.
WAIT_DB = (
    "python3 -c 'import socket,time\n"
    "for i in range(30):\n"
    '  try: print("DBIP=" + socket.gethostbyname("db")); break\n'
    "  except OSError: time.sleep(1)'"
)

#: The probe of the service ``db`` at its address, from the job the service is of.
PROBE_DB = 'python3 -c "$PROBE" "db=http://$(getent hosts db | cut -d\' \' -f1):8000/"'


def test_a_job_cannot_reach_another_jobs_service(pipglr: Pipglr, fake_gitlab: Client) -> None:
    """Job A's service answers at its address from job A (positive control); job B of
    another project, running at the same time on its own per-build network, gets no
    answer from that address, in the way another network's address fails."""
    owner = queue(
        fake_gitlab, pipglr, name="owner", project_id=30,
        services=[{"name": pipglr.image, "alias": "db",
                   "command": ["python3", "-m", "http.server", "8000"]}],
        variables={"HEALTHCHECK_TCP_PORT": "8000", "PROBE": PROBE},
        # Alive until cancelled, saying so every second (the runner learns of the
        # cancel from its next trace update).
        script=[WAIT_DB, PROBE_DB, "echo owner-ready",
                "for i in $(seq 300); do echo alive; sleep 1; done"],
    )  # fmt: skip
    log = trace_until(fake_gitlab, owner, "owner-ready")
    mine = outcomes(log.output()).get("db")
    assert mine and mine.kind == "answered" and mine.detail.startswith("200"), log.tail()
    address = log.search(r"^DBIP=(\d+\.\d+\.\d+\.\d+)$")
    assert address, log.tail()
    intruder = queue(fake_gitlab, pipglr, name="intruder", project_id=31,
                     variables={"PROBE": PROBE},
                     script=[f"python3 -c \"$PROBE\" db=http://{address[1]}:8000/"])  # fmt: skip
    job = fake_gitlab.wait(intruder, timeout=180)
    assert job["state"] == "success", describe(job)
    assert fake_gitlab.job(owner)["state"] == "running", "the service was gone too soon"
    theirs = outcomes(JobLog.of(job).output()).get("db")
    assert theirs and theirs.kind == OTHER_NETWORK, f"{theirs}: {describe(job)}"
    fake_gitlab.cancel(owner)
    assert fake_gitlab.wait(owner, timeout=120)["state"] == "canceled"


#: A job's own IPv4 addresses, one ``JOBIP=`` line each, from the kernel's table (the
#: local ``/32 host`` entries of /proc/net/fib_trie; no tool of the image needed).
JOB_ADDRESSES = (
    "python3 -c 'import re\n"
    'text = open("/proc/net/fib_trie").read()\n'
    r'for a in sorted(set(re.findall(r"\|-- (\S+)\n +/32 host LOCAL", text))): '
    'print("JOBIP=" + a)'
    "'"
)


def test_a_job_variable_cannot_take_a_job_off_its_per_build_network(
    pipglr: Pipglr, fake_gitlab: Client
) -> None:
    """The register label writes FF_NETWORK_PER_BUILD in ``[runners.feature_flags]``,
    which gitlab-runner takes before any job variable (common/build_settings.go): a job
    setting FF_NETWORK_PER_BUILD=false still runs on a network of its own. Seen from
    inside the job: its address lies in the per-build pool the setup unit chose and not
    in the nested default network (both from the setup's boot line), and the job's
    FF_NETWORK_PER_BUILD is the runner's ``true``. Control: the job's other variable
    arrived (the variables were sent)."""
    said = pipglr.journal(layout.PODMAN_SETUP_UNIT)
    plans = re.findall(r"nested networks: default (\S+), per-build from (\S+);", said)
    assert plans, said[-3000:]
    default, pool = (ipaddress.ip_network(n) for n in plans[-1])
    job_id = queue(
        fake_gitlab, pipglr, name="flag-off", project_id=32,
        variables={"FF_NETWORK_PER_BUILD": "false", "MARK": "sent"},
        script=['echo "flag=$FF_NETWORK_PER_BUILD mark=$MARK"', JOB_ADDRESSES],
    )  # fmt: skip
    job = fake_gitlab.wait(job_id, timeout=180)
    assert job["state"] == "success", describe(job)
    log = JobLog.of(job)
    assert log.has_line("flag=true mark=sent"), describe(job)
    found = [ipaddress.ip_address(m[1]) for m in log.matches(r"^JOBIP=(\S+)$")]
    addresses = [a for a in found if not a.is_loopback]
    assert addresses, describe(job)
    assert all(a in pool and a not in default for a in addresses), (
        f"{addresses} not in the per-build pool {pool} (default {default}): {describe(job)}"
    )


#: The probe job's sleep per outer mode: distinct enough to find its process on the
#: host, and apart for the two modes, whose sets run at the same time (one shared
#: duration once matched both modes' jobs when they ran this test together).
PROBE_SLEEPS = {"rootful": "sleep 41.77", "rootless": "sleep 41.78"}


def host_pid(pattern: str, timeout: float = 90) -> int:
    """The host pid of the one process whose command line is ``pattern``."""
    deadline = time.monotonic() + timeout
    while True:
        found = subprocess.run(["pgrep", "-x", "-f", pattern], capture_output=True, text=True,
                               check=False).stdout.split()  # fmt: skip
        if found:
            assert len(found) == 1, f"more than one {pattern!r}: {found}"
            return int(found[0])
        assert time.monotonic() < deadline, f"no {pattern!r} process on the host"
        time.sleep(0.5)


def test_a_jobs_ids_are_none_of_the_hosts(pipglr: Pipglr, fake_gitlab: Client) -> None:
    """A running job's id maps read from the host (``/proc/PID/uid_map`` opened from
    the host's user namespace gives host ids: the job's map and the outer one composed
    by the kernel). Rootless: every id of the job, 0-65535, is a host id at or above
    65536, none of the host's users or system groups. Rootful (accepted with
    PIPGLR_ALLOW_HOST_IDS, see the refusal test below): the job's ids 1-999 are the
    host's own 1-999, which is what that consent accepts."""
    probe = PROBE_SLEEPS[pipglr.outer.mode]
    job = queue(
        fake_gitlab,
        pipglr,
        name="ids-probe",
        script=["echo ids-probe-ready", f"{probe} || true", "echo ids-probe-done"],
    )
    trace_until(fake_gitlab, job, "ids-probe-ready")
    try:
        pid = host_pid(probe)
    except AssertionError:
        fake_gitlab.cancel(job)  # its container must not outlive the test (in use)
        raise
    maps = {kind: subids.parse_id_map(Path(f"/proc/{pid}/{kind}_map").read_text())
            for kind in ("uid", "gid")}  # fmt: skip
    subprocess.run(["kill", str(pid)], check=True)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    (LOG_DIR / f"job-ids-{pipglr.outer.mode}.txt").write_text("".join(
        f"{kind}_map of a job, read from the host: "
        f"{'; '.join(f'{e.inside} {e.outside} {e.count}' for e in extents)}\n"
        for kind, extents in maps.items()))  # fmt: skip
    done = fake_gitlab.wait(job, timeout=120)
    assert done["state"] == "success" and JobLog.of(done).has_line("ids-probe-done"), describe(done)
    for kind, extents in maps.items():
        covered = sum(e.count for e in extents if e.inside < 65536)
        assert covered >= 65536 - 1 - 1, (kind, extents)  # 0-65535 less the podman user gap
        low = [e for e in extents if e.outside < 65536]
        if pipglr.outer.mode == "rootless":
            assert low == [], f"job {kind}s that are the host's own: {low}"
        else:
            assert any(e.inside <= 1 < e.end and e.outside == e.inside for e in low), extents
            said = pipglr.journal(layout.HOST_IDS_UNIT)
            assert "accepted by PIPGLR_ALLOW_HOST_IDS" in said, said


#: A second container started by root without consent to the host's ids.
REFUSED = "pipglr-hostids"


def test_root_without_consent_is_stopped_before_anything_can_start_a_job(
    pipglr: Pipglr,
) -> None:
    """Started by root without a user namespace of its own, the image itself (not only
    `pipglr up`) refuses: the host-ids guard stops the container with status 78 and its
    one-line cause, before the egress guard or the nested podman's setup ran. Positive
    controls: the session container runs (rootful: with PIPGLR_ALLOW_HOST_IDS=true,
    which the guard says it accepted; rootless: its own user namespace)."""
    outer = pipglr.outer
    said = pipglr.journal(layout.HOST_IDS_UNIT)
    if outer.mode == "rootless":
        assert "user namespace of its own" in said, said
        assert not hostids.host_ids(
            pipglr.outer.exec(pipglr.name, "cat", "/proc/self/uid_map").stdout
        )
        return
    assert "accepted by PIPGLR_ALLOW_HOST_IDS" in said, said
    with second_pipglr(pipglr, REFUSED, allow_host_ids=False) as second:
        second.start(ready=False)
        status = second.wait(timeout=180)
        logs = second.logs()
    assert status == layout.CONFIG_ERROR_STATUS, logs[-3000:]
    assert f"pipglr: {hostids.REFUSAL}" in logs, logs[-3000:]
    assert "pipglr: egress guard" not in logs and "nested storage:" not in logs, logs[-3000:]
