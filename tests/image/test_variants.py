"""The privileged build: BUILD_TYPE=dev, NESTED_PRIVILEGED=true (the opt-in for
privileged jobs), run from its run label beside the session's default container
(:func:`tests.image.conftest.privileged_pipglr`, started for this module only: a
second pipglr costs the whole set CPU while it runs). Everything a privileged job may
do that a default one may not is its positive control here; what privilege still
cannot do (find the token, remove the egress guard) is shown here too.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from pipglr import layout
from pipglr.build import labels
from pipglr.guest import netguard
from tests.fakegitlab.ctl import Client
from tests.harness import images, lan
from tests.harness.joblog import JobLog, describe
from tests.harness.netns import TestHost
from tests.image.conftest import LOG_DIR, Pipglr, queue
from tests.image.probes import PROBE
from tests.image.test_egress import REFUSED_IN_JOB, answered, job_results
from tests.image.test_security import assert_no_token_found

pytestmark = [pytest.mark.image, pytest.mark.slow]

VARIANT_TAG = images.VARIANT_IMAGE


def test_dev_build_keeps_the_package_manager(privileged_pipglr: Pipglr) -> None:
    """BUILD_TYPE=dev leaves apt-get and dpkg in the image."""
    host = privileged_pipglr.host()
    assert host.exists("apt-get") and host.exists("dpkg")


def test_run_label_of_the_privileged_build_is_privileged(
    pipglr: Pipglr, privileged_pipglr: Pipglr
) -> None:
    """NESTED_PRIVILEGED=true: the image's run label has --privileged and so has the
    container; the default build's label and container have neither (the control)."""
    inspect = privileged_pipglr.outer.run(
        "image", "inspect", "--format", '{{index .Labels "run"}}', VARIANT_TAG
    )
    assert inspect.stdout.strip() == labels.all_labels(images.VARIANT_SETTINGS)["run"]
    assert "--privileged" in inspect.stdout

    def privileged(name: str) -> str:
        return pipglr.outer.run("inspect", "--format", "{{.HostConfig.Privileged}}", name).stdout

    assert privileged(privileged_pipglr.name).strip() == "true"
    default = pipglr.outer.run("image", "inspect", "--format", '{{index .Labels "run"}}',
                               pipglr.image).stdout  # fmt: skip
    assert "--privileged" not in default and privileged(pipglr.name).strip() == "false"


def test_privileged_job_builds_an_image(privileged_pipglr: Pipglr) -> None:
    """With NESTED_PRIVILEGED=true a privileged nested container builds (and runs a RUN
    step of) an image: today's behaviour for what needs privilege, kept."""
    script = """set -e
mkdir -p /tmp/base /tmp/ctx
for f in /bin/sh /usr/bin/cat $(ldd /bin/sh /usr/bin/cat | grep -o '/[^ :]*'); do
    cp --parents -L "$f" /tmp/base/
done
tar -C /tmp/base -c . | podman --storage-driver vfs import - localhost/job-base >/dev/null
printf 'FROM localhost/job-base\\nRUN echo built-in-a-job > /proof\\n' > /tmp/ctx/Containerfile
podman --storage-driver vfs build --isolation chroot -t localhost/built-in-job /tmp/ctx
podman --storage-driver vfs run --rm --network none --cgroups disabled \\
    localhost/built-in-job cat /proof
"""
    result = privileged_pipglr.docker(
        "run", "--rm", "-i", "--privileged", "--entrypoint", "sh", privileged_pipglr.image,
        input=script, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.strip().endswith("built-in-a-job"), result.stdout[-2000:]


@pytest.mark.security
def test_a_privileged_job_cannot_find_the_runner_token(
    privileged_pipglr: Pipglr, fake_gitlab: Client
) -> None:
    """The token snoop of test_security.py, as a privileged job: no seccomp filter,
    every capability of its user namespace, read-write /sys — still no token."""
    assert "privileged = true" in privileged_pipglr.config_text
    assert_no_token_found(privileged_pipglr, fake_gitlab)


@pytest.mark.security
def test_a_privileged_job_cannot_remove_the_guard(
    privileged_pipglr: Pipglr, fake_gitlab: Client, lan_hosts: dict[str, TestHost]
) -> None:
    """A privileged job (of the privileged build, NESTED_PRIVILEGED=true, with the
    session's allow-list: default jobs lack the capability to try) flushes every
    nftables rule it can see — its own namespace's — then tries the LAN again: still
    refused, the guard's way, and the outer table is intact. Positive control in the
    same job, after the flush: the allow-listed host answers (the job's network works;
    only the guard stands in the way)."""
    pipglr = privileged_pipglr
    blocked, allowed = lan.BLOCKED["private10"], lan.ALLOWED["allowed"]
    job_id = queue(fake_gitlab, pipglr, name="unguard", script=[
        "nft flush ruleset && echo flushed",
        f"nft delete table inet {netguard.TABLE} || echo no-such-table-here",
        f"python3 -c \"$PROBE\" private10={lan.url(blocked)} allowed={lan.url(allowed)}",
    ], variables={"PROBE": PROBE})  # fmt: skip
    job = fake_gitlab.wait(job_id, timeout=240)
    assert job["state"] == "success", describe(job)
    log = JobLog.of(job)
    assert log.has_line("flushed") and log.has_line("no-such-table-here"), describe(job)
    seen = job_results(job)
    assert answered(seen["allowed"], "allowed"), f"positive control: {seen}"
    assert seen["private10"].kind == REFUSED_IN_JOB, seen
    table = pipglr.outer.exec(pipglr.name, "nft", "list", "table", "inet", netguard.TABLE)
    assert '@private4 counter name "private"' in table.stdout, table.stdout


#: Syscalls the inner podman's default seccomp profile refuses to a job (arguments
#: valid, so that without the filter each reaches the kernel), plus ``keyctl`` (the
#: profile allows it: reported, not asserted), the job's seccomp mode, effective
#: capabilities and /sys mount. Prints ``NAME RESULT`` lines.
SYSCALL_PROBE = """
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
def call(number, *args):
    ok = libc.syscall(number, *args) >= 0
    return "ok" if ok else errno.errorcode.get(ctypes.get_errno(), "?")
attr = bytearray(128)
attr[0:4] = (1).to_bytes(4, "little")            # PERF_TYPE_SOFTWARE (cpu-clock)
attr[4:8] = (128).to_bytes(4, "little")          # size
attr[40:48] = (0x60).to_bytes(8, "little")       # exclude_kernel, exclude_hv
os.makedirs("/tmp/m", exist_ok=True)
print("syscall-keyctl", call(250, 0, -3, 0, 0, 0))
print("syscall-perf_event_open", call(298, (ctypes.c_char * 128).from_buffer(attr), 0, -1, -1, 0))
print("syscall-bpf", call(321, 0, ctypes.c_char_p(bytes(72)), 72))
print("syscall-mount", call(165, b"none", b"/tmp/m", b"tmpfs", 0, None))
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
print("seccomp", status["Seccomp"].strip())
print("capeff", status["CapEff"].strip())
print("sys", [m.split()[3].split(",")[0] for m in open("/proc/self/mounts")
              if m.split()[1] == "/sys"][0])
"""
#: x86-64 syscall numbers above; CAP_SYS_ADMIN's bit in CapEff.
CAP_SYS_ADMIN = 1 << 21


def probe_results(job: dict[str, Any]) -> dict[str, str]:
    """The probe's ``NAME RESULT`` lines of a job."""
    return {m[1]: m[2] for m in JobLog.of(job).matches(r"^(syscall-\w+|seccomp|capeff|sys) (\S+)$")}


@pytest.mark.security
def test_a_default_job_runs_under_seccomp(
    pipglr: Pipglr, privileged_pipglr: Pipglr, fake_gitlab: Client
) -> None:
    """A job as the default register label sets it up runs with seccomp filter mode 2,
    without CAP_SYS_ADMIN, a read-only /sys, and perf_event_open, bpf and mount fail
    with EPERM. Positive control: the same probe in a job of the privileged build's
    runner — no filter, the syscalls reach the kernel (bpf then refuses the empty
    program with EINVAL), a read-write /sys."""
    assert "privileged = false" in pipglr.config_text, pipglr.config_text
    ids = {
        name: queue(
            fake_gitlab,
            handle,
            name=f"seccomp-{name}",
            script=['python3 -c "$PROBE"'],
            variables={"PROBE": SYSCALL_PROBE},
        )  # fmt: skip
        for name, handle in (("default", pipglr), ("privileged", privileged_pipglr))
    }
    jobs = {name: fake_gitlab.wait(job_id, timeout=240) for name, job_id in ids.items()}
    for job in jobs.values():
        assert job["state"] == "success", describe(job)
    default, privileged = (probe_results(jobs[name]) for name in ("default", "privileged"))
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    table = "".join(f"{key} default={default.get(key)} privileged={privileged.get(key)}\n"
                    for key in sorted(default.keys() | privileged.keys()))  # fmt: skip
    (LOG_DIR / f"seccomp-{pipglr.outer.mode}.txt").write_text(table)
    assert privileged["seccomp"] == "0" and privileged["sys"] == "rw", privileged
    assert int(privileged["capeff"], 16) & CAP_SYS_ADMIN, privileged
    assert privileged["syscall-perf_event_open"] == "ok", privileged
    assert privileged["syscall-bpf"] == "EINVAL" and privileged["syscall-mount"] == "ok"
    assert default["seccomp"] == "2" and default["sys"] == "ro", default
    assert not int(default["capeff"], 16) & CAP_SYS_ADMIN, default
    for name in ("perf_event_open", "bpf", "mount"):
        assert default[f"syscall-{name}"] == "EPERM", default


def test_prune_service_removes_leftovers_and_keeps_tagged_images(privileged_pipglr: Pipglr) -> None:
    """The prune unit (run by its timer, here with no grace period) removes a stopped
    container and a dangling image, and leaves tagged images to the evictor. Runs last
    here."""
    p = privileged_pipglr
    tagged = p.docker("images", "--quiet").stdout.split()
    assert tagged, "expected the loaded job image"

    def nested(*args: str) -> str:
        return p.podman(*args).stdout.strip()

    script = ("mkdir -p /tmp/prune && cd /tmp/prune && head -c 1000 /dev/urandom > blob && "
              "printf 'FROM scratch\\nCOPY blob /blob\\n' > Containerfile")  # fmt: skip
    p.outer.exec(p.name, "sh", "-c", script, user=layout.PODMAN.name)
    first = nested("build", "-q", "-t", "localhost/prune-me", "/tmp/prune")
    p.outer.exec(p.name, "sh", "-c", script, user=layout.PODMAN.name)
    nested("build", "-q", "-t", "localhost/prune-me", "/tmp/prune")  # `first` is dangling now
    nested("create", "--name", "prune-stopped", "localhost/prune-me", "/x")
    dropin = f"/run/systemd/system/{layout.PRUNE_SERVICE_UNIT}.d"
    p.outer.exec(p.name, "sh", "-c", f"mkdir -p {dropin} && printf "
                 f"'[Service]\\nEnvironment=PIPGLR_EVICT_MIN_AGE=0\\n' > {dropin}/test.conf && "
                 "systemctl daemon-reload")  # fmt: skip
    p.outer.exec(p.name, "systemctl", "start", layout.PRUNE_SERVICE_UNIT)
    result = p.outer.exec(p.name, "systemctl", "show", "--property", "Result",
                          layout.PRUNE_SERVICE_UNIT)  # fmt: skip
    assert result.stdout.strip() == "Result=success"
    said = p.outer.exec(p.name, "journalctl", "-u", layout.PRUNE_SERVICE_UNIT, "-o", "cat",
                        "--no-pager").stdout  # fmt: skip
    assert re.search(r"pruned [1-9]\d* stopped container\(s\) .* [1-9]\d* dangling", said), said
    images = nested("images", "--all", "--quiet", "--no-trunc")
    assert first not in images, "the dangling image stays"
    assert "prune-stopped" not in nested("ps", "--all", "--format", "{{.Names}}")
    assert set(tagged) <= set(p.docker("images", "--quiet").stdout.split()), "tagged images went"
