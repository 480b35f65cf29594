"""Storage governance in the running image: the LRU evictor, the job-aware prune and
``pipglr storage`` (issue "storage governance").

The evictor's settings are changed the way an operator's ``--env`` would reach it,
but without re-creating the shared container: a runtime drop-in (``/run``, gone at the
next boot) on ``pipglr-evictor.service``. The job image of the other tests
(``localhost/pipglr:test``) is put on the keep-list so these tests cannot take it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipglr import layout
from pipglr.guest import carryover
from pipglr.ops.operate import Operator
from tests.fakegitlab.ctl import Client
from tests.harness.joblog import JobLog, describe
from tests.image.conftest import Pipglr, queue, trace_until, wait_ready

pytestmark = [pytest.mark.image, pytest.mark.slow]

EVICTOR = layout.EVICTOR_UNIT
IMAGE_BYTES = 4 * 2**20
#: Keeps the other tests' job image; the helper image is on the default keep-list.
KEEP = "^localhost/pipglr:"
DROPIN = "pipglr-test.conf"
RECORD = Path(__file__).resolve().parents[2] / "build" / "test-logs"


def nested(p: Pipglr, *args: str, check: bool = True) -> Any:
    """The nested podman's CLI as user podman."""
    return p.podman(*args, check=check)


#: Inventory.remove of an image by name, bypassing the evictor's own in-use check.
REMOVE_IN_USE = f"""
import sys
from podman import PodmanClient
from pipglr.guest import lru
from pipglr.guest.inventory import Inventory
with PodmanClient(base_url="unix://{layout.SOCKET_PATH}") as client:
    print(Inventory(client).remove(lru.Item(lru.IMAGE, sys.argv[1], 0, 0.0, (sys.argv[1],))))
"""


def report(p: Pipglr) -> dict[str, Any]:
    """``pipglr storage --json`` (the operator's side: podman exec of storage-report)."""
    data: dict[str, Any] = json.loads(Operator(p.outer, p.image).storage_report(True))
    return data


def report_when(
    p: Pipglr, what: str, ok: Callable[[dict[str, Any]], bool], timeout: float = 60
) -> dict[str, Any]:
    """The first report for which ``ok`` holds."""
    found: dict[str, Any] = until(what, lambda: (lambda d: d if ok(d) else None)(report(p)),
                                  timeout)  # fmt: skip
    return found


def by_name(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: item for item in data["items"] for name in item["names"] or [item["id"]]}


def tune(p: Pipglr, unit: str, env: dict[str, str] | None, restart: bool = True) -> None:
    """Give ``unit`` these settings (a runtime drop-in), or take them away (None)."""
    directory = f"/run/systemd/system/{unit}.d"
    if env is None:
        p.outer.exec(p.name, "rm", "-f", f"{directory}/{DROPIN}")
    else:
        text = "[Service]\n" + "".join(f"Environment={k}={v}\n" for k, v in env.items())
        p.outer.exec(p.name, "sh", "-c", f"mkdir -p {directory} && cat > {directory}/{DROPIN}",
                     input=text)  # fmt: skip
    p.outer.exec(p.name, "systemctl", "daemon-reload")
    if restart:
        p.outer.exec(p.name, "systemctl", "restart", unit)


def build(p: Pipglr, name: str, size: int = IMAGE_BYTES) -> str:
    """A one-layer image of ``size`` random bytes, built in the nested podman."""
    context = f"/tmp/evict/{name}"
    p.outer.exec(
        p.name, "sh", "-c",
        f"mkdir -p {context} && head -c {size} /dev/urandom > {context}/blob && "
        f"printf 'FROM scratch\\nCOPY blob /blob\\n' > {context}/Containerfile",
        user=layout.PODMAN.name,
    )  # fmt: skip
    nested(p, "build", "-q", "-t", f"localhost/{name}", context)
    p.outer.exec(p.name, "rm", "-rf", context)
    time.sleep(1.1)  # distinct last-use times, also at the second resolution of Created
    return f"localhost/{name}:latest"


def until(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    """Poll ``check`` until it returns something true."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)


def evictions(p: Pipglr, since: str) -> list[str]:
    """The evictor's "evicted ..." journal lines since ``since`` (journalctl time)."""
    journal = p.outer.exec(p.name, "journalctl", "-u", EVICTOR, "-o", "cat", "--no-pager",
                           "--since", since).stdout  # fmt: skip
    return [line.split()[3] for line in journal.splitlines() if line.startswith("pipglr: evicted ")]


def journal_now(p: Pipglr) -> str:
    return str(p.outer.exec(p.name, "date", "+%Y-%m-%d %H:%M:%S").stdout.strip())


@pytest.fixture(scope="module")
def evictor_defaults(pipglr: Pipglr) -> Iterator[Pipglr]:
    """The shared container with the evictor back at its defaults afterwards."""
    until("the evictor to run", lambda: nested_active(pipglr))
    yield pipglr
    tune(pipglr, EVICTOR, None)
    tune(pipglr, layout.PRUNE_SERVICE_UNIT, None, restart=False)
    nested(pipglr, "rm", "-f", "evict-hold", check=False)


def nested_active(p: Pipglr) -> bool:
    state = p.outer.exec(p.name, "systemctl", "is-active", EVICTOR, check=False).stdout.strip()
    return state == "active"


def test_evictor_removes_exactly_the_least_recently_used_unused_things(
    evictor_defaults: Pipglr,
) -> None:
    """Executor volumes and cache directories age like images; in-use and kept ones
    stay; then six images: the three least recently used unused ones go, in order;
    the booked uses survive a restart of the outer container; and a loop building
    more images stays under the cap."""
    p = evictor_defaults
    # 1. Everything unused goes with a 1-byte cap and no minimum age; what a container
    #    uses and what the keep-list names stays.
    p.outer.exec(p.name, "sh", "-c", "mkdir -p /cache/runner-evt-project-1-concurrent-0/x && "
                 "head -c 100000 /dev/urandom > /cache/runner-evt-project-1-concurrent-0/x/b",
                 user=layout.PODMAN.name)  # fmt: skip
    for volume in ("runner-evt-project-1-concurrent-0-cache-1", "runner-evt-held-cache-1"):
        nested(p, "volume", "create", volume)
    held = build(p, "evict-held")
    nested(p, "create", "--name", "evict-hold", "-v", "runner-evt-held-cache-1:/c", held, "/x")
    before = by_name(report(p))
    assert {"runner-evt-project-1-concurrent-0", "runner-evt-project-1-concurrent-0-cache-1",
            held} <= set(before), before  # fmt: skip
    assert before["runner-evt-project-1-concurrent-0"]["size"] >= 100000
    since = journal_now(p)
    tune(p, EVICTOR, {"PIPGLR_STORAGE_THRESHOLD": "1", "PIPGLR_EVICT_MIN_AGE": "0",
                      "PIPGLR_EVICT_KEEP": KEEP, "PIPGLR_EVICT_INTERVAL": "5s"})  # fmt: skip
    unused = {"runner-evt-project-1-concurrent-0", "runner-evt-project-1-concurrent-0-cache-1"}
    cleaned = by_name(report_when(p, "the unused volume and cache dir evicted",
                                  lambda d: not unused & set(by_name(d))))  # fmt: skip
    assert cleaned[held]["protected"] == "in use"
    assert cleaned["runner-evt-held-cache-1"]["protected"] == "in use"
    assert cleaned[f"{p.image}"]["protected"] == "keep-list"
    helper = [n for n in cleaned if "gitlab-runner-helper" in n]
    assert all(cleaned[n]["protected"] == "keep-list" for n in helper)
    cache_dir = "/cache/runner-evt-project-1-concurrent-0"
    assert p.outer.exec(p.name, "test", "-e", cache_dir, check=False).returncode == 1
    gone = evictions(p, since)
    assert "runner-evt-project-1-concurrent-0" in gone, gone

    # 2. Six images while the cap is large; t2 used after all were built, t5 held.
    tune(p, EVICTOR, {"PIPGLR_EVICT_MIN_AGE": "0", "PIPGLR_EVICT_KEEP": KEEP,
                      "PIPGLR_EVICT_INTERVAL": "5s"})  # fmt: skip
    names = [build(p, f"evict-t{n}") for n in range(1, 7)]
    nested(p, "create", "--name", "evict-use2", names[1], "/x")
    nested(p, "rm", "evict-use2")
    nested(p, "rm", "-f", "evict-hold")
    nested(p, "create", "--name", "evict-hold", "-v", "runner-evt-held-cache-1:/c", names[4], "/x")
    nested(p, "rmi", held)  # unused now, and older than t1: out of the count
    data = by_name(report_when(p, "the use of t2 booked", lambda d: (
        by_name(d)[names[1]]["last_used"] > by_name(d)[names[5]]["last_used"])))  # fmt: skip
    base = report(p)["usage"]["total"] - sum(data[n]["size"] for n in names)
    size = data[names[0]]["size"]
    cap = base + int(3.5 * size)

    # 3. A cap that holds three of them: t1, t3, t4 go (in that order); t2 (used
    #    recently), t5 (in use) and t6 (newest) stay.
    since = journal_now(p)
    tune(p, EVICTOR, {"PIPGLR_STORAGE_THRESHOLD": str(cap), "PIPGLR_EVICT_MIN_AGE": "0",
                      "PIPGLR_EVICT_KEEP": KEEP, "PIPGLR_EVICT_INTERVAL": "5s"})  # fmt: skip
    after = report_when(p, "eviction under the cap", lambda d: d["usage"]["total"] <= cap)
    left = by_name(after)
    assert [n for n in names if n in left] == [names[1], names[4], names[5]], sorted(left)
    order = [n for n in evictions(p, since) if n.startswith("localhost/evict-")]
    text = Operator(p.outer, p.image).storage_report(False)  # `pipglr storage`
    assert text.startswith("nested storage: "), text
    assert [line.split()[-2:] for line in text.splitlines() if names[4] in line] == [["in", "use"]]
    assert order == [names[0], names[2], names[3]], order
    record = (f"threshold {cap} bytes (base {base} + 3.5 x {size}); usage before "
              f"{base + 6 * size}, after {after['usage']['total']}; evicted in order: "
              f"{', '.join(order)}")  # fmt: skip

    # The last line of defence, asked directly (no re-check first): the evictor's
    # removal of an image a container uses is refused by podman, and the image stays.
    refused = p.outer.exec(p.name, str(layout.PYTHON), "-c", REMOVE_IN_USE, names[4],
                           user=layout.PODMAN.name, check=False)  # fmt: skip
    assert "in use" in refused.stdout, refused.stdout + refused.stderr
    assert names[4] in by_name(report(p))

    # 4. The book survives a restart of the outer container (the drop-in does not:
    #    /run is a tmpfs, so the evictor is back at its defaults). So do the volumes and
    #    what they hold (carried over: registered again at the start); the nested
    #    containers do not (a transient store: their records were on that tmpfs).
    #    And an upgrade from a persistent store (what images before it had: db.sql on
    #    the volume, with a container and a volume recorded there) is taken over.
    used = {n: left[n]["last_used"] for n in (names[1], names[5])}
    kept = f"{carryover.GRAPH_ROOT}/volumes/runner-evt-held-cache-1/_data"
    p.outer.exec(p.name, "sh", "-c", f"echo kept > {kept}/mark", user=layout.PODMAN.name)
    legacy_db = f"{carryover.GRAPH_ROOT}/{carryover.DB_NAME}"
    nested(p, "--transient-store=false", "volume", "create", "legacy-vol")
    nested(p, "--transient-store=false", "create", "--name", "legacy-ctr", p.image, "true")
    p.outer.exec(p.name, "test", "-s", legacy_db)
    assert "legacy-ctr" in nested(p, "ps", "--all", "--external").stdout
    p.outer.run("restart", "--time", "60", p.name, timeout=300)
    wait_ready(p.outer, p.name)
    again = by_name(report(p))
    assert {n: again[n]["last_used"] for n in used} == used
    assert again[names[1]]["last_used"] > again[names[5]]["last_used"]
    mountpoint = nested(p, "volume", "inspect", "--format", "{{.Mountpoint}}",
                        "runner-evt-held-cache-1").stdout.strip()  # fmt: skip
    assert mountpoint == kept
    assert p.outer.exec(p.name, "cat", f"{kept}/mark").stdout.strip() == "kept"
    assert nested(p, "ps", "--all", "--external", "--quiet").stdout.split() == []
    nested(p, "volume", "inspect", "legacy-vol")
    assert p.outer.exec(p.name, "test", "-e", legacy_db, check=False).returncode == 1
    carried = p.journal(layout.PODMAN_SERVICE_UNIT)
    assert "1 leftover container(s) removed" in carried, carried
    assert "the persistent store's database retired" in carried, carried
    nested(p, "create", "--name", "evict-hold", "-v", "runner-evt-held-cache-1:/c", names[4], "/x")

    # 5. A loop building more images under the 3.5-image cap: after each build the
    #    evictor brings usage back under the cap; the newest image and the held one stay.
    tune(p, EVICTOR, {"PIPGLR_STORAGE_THRESHOLD": str(cap), "PIPGLR_EVICT_MIN_AGE": "0",
                      "PIPGLR_EVICT_KEEP": KEEP, "PIPGLR_EVICT_INTERVAL": "5s"})  # fmt: skip
    peaks = []
    for n in range(1, 4):
        newest = build(p, f"evict-loop{n}")
        peaks.append(report(p)["usage"]["total"])
        settled = report_when(p, "usage back under the cap",
                              lambda d: d["usage"]["total"] <= cap, timeout=30)  # fmt: skip
        present = by_name(settled)
        assert newest in present and names[4] in present, sorted(present)
    assert max(peaks) <= cap + size + 4096, (peaks, cap)
    RECORD.mkdir(parents=True, exist_ok=True)
    (RECORD / f"eviction-{p.outer.mode}.txt").write_text(
        f"{record}\nloop of 3 builds: usage right after each build {peaks}, cap {cap}\n"
    )


def test_prune_and_eviction_during_a_running_job_do_not_break_it(
    evictor_defaults: Pipglr, fake_gitlab: Client
) -> None:
    """A multi-stage job (cache restore/archive in the helper container, which stays
    stopped between its stages, after_script) runs on an image no keep-list names
    while the prune runs with no grace period and the evictor with a 1-byte cap: the
    job succeeds. Controls: the same prune removes an old stopped container and the
    evictor an unused image in that very window (the job still running after both)."""
    p = evictor_defaults
    # Defaults while the job starts: the minimum age (1 h) covers the executor's pull
    # attempts before its containers exist (nothing in the event stream shows them:
    # with no minimum age an image can go in that window, which a first version of
    # this test did).
    tune(p, EVICTOR, None)
    # The job image: the test image plus a label, so it has an id of its own that no
    # keep-list names (its parent, the test image, stays kept).
    job_image = "localhost/evict-job:latest"
    p.outer.exec(p.name, "sh", "-c", "mkdir -p /tmp/evict/job && printf 'FROM %s\\nLABEL "
                 "pipglr.test=evict-job\\n' " + p.image + " > /tmp/evict/job/Containerfile",
                 user=layout.PODMAN.name)  # fmt: skip
    nested(p, "build", "-q", "-t", job_image, "/tmp/evict/job")
    victim = build(p, "evict-victim")
    nested(p, "create", "--name", "evict-stale", victim, "/x")
    tune(p, layout.PRUNE_SERVICE_UNIT, {"PIPGLR_EVICT_MIN_AGE": "0"}, restart=False)
    job = queue(
        fake_gitlab, p, name="storage-during-job", project_id=31, image=job_image,
        script=["echo job-started", "sleep 20", "mkdir -p deps && echo kept > deps/file",
                "echo job-finished"],
        after_script=["echo after_script ran"],
        cache=[{"key": "deps", "paths": ["deps/"], "policy": "pull-push"}],
    )  # fmt: skip
    trace_until(fake_gitlab, job, "job-started")
    nested(p, "rm", "-f", "evict-hold", check=False)
    since = journal_now(p)
    # A oneshot: start returns once the prune ran, and fails (raises) if it failed.
    p.outer.exec(p.name, "systemctl", "start", layout.PRUNE_SERVICE_UNIT)
    tune(p, EVICTOR, {"PIPGLR_STORAGE_THRESHOLD": "1", "PIPGLR_EVICT_MIN_AGE": "0",
                      "PIPGLR_EVICT_KEEP": KEEP, "PIPGLR_EVICT_INTERVAL": "2s"})  # fmt: skip
    until("the unused image evicted", lambda: victim in evictions(p, since))
    during = fake_gitlab.job(job)
    assert during["state"] == "running", f"not during the job: {describe(during)}"
    prune_log = p.outer.exec(p.name, "journalctl", "-u", layout.PRUNE_SERVICE_UNIT, "-o", "cat",
                             "--no-pager", "--since", since).stdout  # fmt: skip
    assert "pruned " in prune_log, prune_log
    assert nested(p, "container", "exists", "evict-stale", check=False).returncode == 1
    assert job_image not in evictions(p, since)
    record = fake_gitlab.wait(job, timeout=240)
    assert record["state"] == "success", describe(record, 3000)
    log = JobLog.of(record)
    assert log.has_line("job-finished") and log.has_line("after_script ran"), describe(record)
    assert log.contains("Saving cache") or log.contains("Creating cache"), describe(record)
    # Once the job is over, nothing holds its image: the 1-byte cap takes it.
    until("the job image evicted after the job", lambda: job_image in evictions(p, since))
