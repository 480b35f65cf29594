"""The runner's token stays where it belongs: in the config secret and the runner's
private state, nowhere a job, the podman user or the host's podman metadata shows it.

A first part of the security suite (the hostile-job issue adds network, isolation
and fault tests in this module).
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from pipglr import labels, layout, subids
from pipglr.guest import hostids
from tests.fakegitlab.ctl import Client
from tests.image.conftest import LOG_DIR, Pipglr, queue, trace_until

pytestmark = [pytest.mark.image, pytest.mark.security]

#: What a hostile job tries, each step marked so the trace shows it ran.
SNOOP = [
    "echo snoop:env; env",
    "echo snoop:pid1; tr '\\0' '\\n' < /proc/1/environ || true",
    "echo snoop:procs; cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' || true",
    f"echo snoop:secret; cat {layout.CONFIG_PATH} || true",
    f"echo snoop:state; cat {layout.RUNNER_STATE_CONFIG} || true",
    f"echo snoop:socket; ls -la {layout.SOCKET_DIR} || true",
    "echo snoop:grep; grep -rsoh 'glrt-[A-Za-z0-9_-]*' /etc /run /var /builds /cache || true",
    "echo snoop:done",
]


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


def test_a_privileged_job_cannot_find_the_runner_token(pipglr: Pipglr, fake_gitlab: Client) -> None:
    """A privileged job reads its environment, every process environment it can, the
    secret and state paths, the socket directory, and greps for glrt- tokens: all ran
    (each step is in the trace), and the runner's token is in none of it."""
    assert "privileged = true" in pipglr.config_text
    token = pipglr.runner_tokens()[0]
    job_id = queue(fake_gitlab, pipglr, name="snoop", script=SNOOP)
    job = fake_gitlab.wait(job_id, timeout=240)
    trace = job.get("trace", "")
    assert job["state"] == "success", trace[-2000:]
    steps = ("env", "pid1", "procs", "secret", "state", "socket", "grep", "done")
    assert all(f"\nsnoop:{step}" in trace for step in steps), trace[-3000:]
    assert "CI_JOB_TOKEN=" in trace, "the job's own environment was printed"
    assert token not in trace, "the job found the runner token"


#: Fetch http://$1:8000/ once (5 s timeout); print whether it answered.
PROBE = (
    "python3 -c 'import sys,urllib.request as u\n"
    'try: print("probe answered", u.urlopen(f"http://{sys.argv[1]}:8000/", timeout=5).status)\n'
    'except OSError as e: print("probe got no answer:", e)\' '
)
#: Wait for the service ``db`` (retrying while it starts), print its address.
WAIT_DB = (
    "python3 -c 'import socket,time\n"
    "for i in range(30):\n"
    '  try: print("DBIP=" + socket.gethostbyname("db")); break\n'
    "  except OSError: time.sleep(1)'"
)


def test_a_job_cannot_reach_another_jobs_service(pipglr: Pipglr, fake_gitlab: Client) -> None:
    """Job A's service answers at its address from job A (positive control); job B of
    another project, running at the same time on its own per-build network, gets no
    answer from that address."""
    owner = queue(
        fake_gitlab, pipglr, name="owner", project_id=30,
        services=[{"name": pipglr.image, "alias": "db",
                   "command": ["python3", "-m", "http.server", "8000"]}],
        variables={"HEALTHCHECK_TCP_PORT": "8000"},
        script=[WAIT_DB, f"{PROBE} $(getent hosts db | cut -d' ' -f1)",
                "echo owner-ready", "sleep 45"],
    )  # fmt: skip
    trace = trace_until(fake_gitlab, owner, "owner-ready")
    assert re.search(r"(?m)^probe answered 200", trace), trace[-2000:]
    address = re.search(r"DBIP=(\d+\.\d+\.\d+\.\d+)", trace)
    assert address, trace[-2000:]
    intruder = queue(fake_gitlab, pipglr, name="intruder", project_id=31,
                     script=[f"{PROBE} {address[1]}"])  # fmt: skip
    job = fake_gitlab.wait(intruder, timeout=180)
    assert job["state"] == "success", job.get("trace", "")[-2000:]
    assert fake_gitlab.job(owner)["state"] == "running", "the service was gone too soon"
    assert re.search(r"(?m)^probe got no answer: ", job["trace"]), job["trace"][-2000:]
    assert not re.search(r"(?m)^probe answered", job["trace"]), job["trace"][-2000:]
    assert fake_gitlab.wait(owner, timeout=120)["state"] == "success"


#: The probe job's sleep, distinct enough to find its process on the host.
PROBE_SLEEP = "sleep 41.77"


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
    job = queue(
        fake_gitlab,
        pipglr,
        name="ids-probe",
        script=["echo ids-probe-ready", f"{PROBE_SLEEP} || true", "echo ids-probe-done"],
    )
    trace_until(fake_gitlab, job, "ids-probe-ready")
    pid = host_pid(PROBE_SLEEP)
    maps = {kind: subids.parse_id_map(Path(f"/proc/{pid}/{kind}_map").read_text())
            for kind in ("uid", "gid")}  # fmt: skip
    subprocess.run(["kill", str(pid)], check=True)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    (LOG_DIR / f"job-ids-{pipglr.outer.mode}.txt").write_text("".join(
        f"{kind}_map of a job, read from the host: "
        f"{'; '.join(f'{e.inside} {e.outside} {e.count}' for e in extents)}\n"
        for kind, extents in maps.items()))  # fmt: skip
    done = fake_gitlab.wait(job, timeout=120)
    assert done["state"] == "success" and "ids-probe-done" in done["trace"], done["trace"][-2000:]
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
    volumes = [f"{REFUSED}-{v}" for v in (layout.STORAGE_VOLUME, layout.CACHE_VOLUME,
                                          layout.RUNNER_VOLUME)]  # fmt: skip
    outer.run("rm", "--force", "--ignore", REFUSED)
    try:
        outer.run(*labels.second_instance(pipglr.settings, pipglr.image, REFUSED, None)[1:])
        status = outer.run("wait", REFUSED, timeout=180).stdout.strip()
        result = outer.run("logs", REFUSED)
        logs = result.stdout + result.stderr
        assert status == str(layout.CONFIG_ERROR_STATUS), logs[-3000:]
        assert f"pipglr: {hostids.REFUSAL}" in logs, logs[-3000:]
        assert "pipglr: egress guard" not in logs and "nested storage:" not in logs, logs[-3000:]
    finally:
        outer.run("rm", "--force", "--ignore", REFUSED, check=False)
        outer.run("volume", "rm", "--force", *volumes, check=False)
