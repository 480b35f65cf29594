"""The weekly image reaches users by itself: ``pipglr quadlet --auto-update`` and
``podman auto-update`` (issue "weekly rebuild").

This CI host has podman 4.3 and no systemd as PID 1, so the user's machine is played
by a container: the image under test itself (systemd, podman 5.4 with quadlet), run
privileged by root with its own storage volume; its root user plays the operator
(rootful podman there). Versions are published with ``pipglr.release.registry.publish`` (what
``invoke publish`` runs) to Debian's ``docker-registry`` on this host, listening on
the host's address on root podman's default bridge, which that container reaches:

1. v1 (the test image) is published, registered, set up with the image's own
   runlabels and started from the units ``pipglr quadlet --auto-update`` writes;
2. with a job running, v2 (v1 plus a label) is published and ``podman auto-update``
   runs: it pulls v2 and restarts the unit; the restart waits for the runner's
   graceful stop (the job finishes and is reported success) and succeeds once the new
   container's health check passes; pipglr runs v2;
3. v3, whose gitlab-runner cannot start, is published: its container never becomes
   healthy, the restart fails, ``podman auto-update`` rolls back to v2, and a job
   runs on it.

Runs once per session (not per outer mode): it needs root on the host.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipglr import layout
from pipglr.build import base, imagebuild
from pipglr.ops import configsecret, doctor, quadlet
from pipglr.ops.operate import Operator
from pipglr.ops.outer import Outer
from pipglr.release import registry
from tests.fakegitlab.ctl import Client
from tests.harness import gitlab
from tests.harness import registry as test_registry
from tests.harness.joblog import JobLog, describe
from tests.image.conftest import (
    LOG_DIR,
    TEST_IMAGE,
    dump_logs,
    trace_until,
)
from tests.image.infra import unavailable

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.destructive]

HOST = "pipglr-auhost"
HOST_VOLUME = "pipglr-auhost-lib"
TOKEN = gitlab.token("second", "none")
#: The "user's" podman: the one inside the container that plays the host.
USER_PODMAN = ("podman", "exec", "-i", HOST, "podman")
#: Subnet of that podman's default network (root podman's own default, 10.88.0.0/16,
#: is where the playing container itself lives).
USER_SUBNET = "10.123.0.0/24"
#: Bounded start for the broken image (the generated unit allows 300 s). A good image
#: is healthy after its first health check, ~12 s after the start (measured: v1 12.3 s),
#: and the rollback's start of the previous image runs under the same bound.
START_TIMEOUT = 40


@dataclass
class Machine:
    """The container playing the user's machine, and the registry it pulls from."""

    root: Outer
    registry: str

    def sh(self, script: str, input: str | None = None, check: bool = True) -> Any:
        return self.root.exec(HOST, "sh", "-c", script, input=input, check=check)

    def podman(
        self, *args: str, check: bool = True, timeout: float = 600, input: str | None = None
    ) -> Any:
        return self.root.run("exec", "-i", HOST, "podman", *args, check=check, timeout=timeout,
                             input=input)  # fmt: skip

    @property
    def image(self) -> str:
        return f"{self.registry}/pipglr:latest"

    def running_digest(self) -> str:
        """The digest of the image the running pipglr container was created from."""
        return str(self.podman("inspect", "--format", "{{.ImageDigest}}", "pipglr").stdout.strip())


def bridge_address(root: Outer) -> str:
    """This host's address on root podman's default network (its gateway)."""
    info = json.loads(root.run("network", "inspect", "podman").stdout)[0]
    return str(info["subnets"][0]["gateway"])


@pytest.fixture(scope="module")
def machine(built_image: imagebuild.BuildResult, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Machine]:  # fmt: skip
    """The playing container up, the registry serving, v1 published."""
    root = Outer.for_mode("rootful")
    reason = root.available()
    if reason:
        unavailable(reason)
    root.run("rm", "--force", "--ignore", HOST)
    root.run("volume", "rm", "--force", HOST_VOLUME, check=False)
    root.run("run", "-d", "--name", HOST, "--privileged", "--systemd", "always",
             # pipglr's own units in there would guard the playing machine's network,
             # and stop it: it runs as root with the host's ids (pipglr/guest/hostids.py).
             "--env", "PIPGLR_EGRESS_GUARD=off", "--env", layout.HOST_IDS_CONSENT,
             "-v", f"{HOST_VOLUME}:/var/lib/containers", TEST_IMAGE)  # fmt: skip
    stack = ExitStack()
    try:
        root.wait_for(HOST, ["podman", "info"])
        root.exec(HOST, "systemctl", "stop", layout.RUNNER_SERVICE_UNIT, layout.EVICTOR_UNIT,
                  layout.PODMAN_SOCKET_UNIT, layout.PODMAN_SERVICE_UNIT, check=False)  # fmt: skip
        registry_at = test_registry.serve(tmp_path_factory.mktemp("au-registry"),
                                          bridge_address(root))  # fmt: skip
        host = stack.enter_context(registry_at)
        m = Machine(root, host)
        m.sh("mkdir -p /etc/containers/registries.conf.d /etc/containers/containers.conf.d && "
             "cat > /etc/containers/registries.conf.d/pipglr-test.conf && "
             # No D-Bus in the image: crun cannot reach systemd's cgroup manager.
             f"printf '[network]\\ndefault_subnet = \"{USER_SUBNET}\"\\n"
             "[engine]\\ncgroup_manager = \"cgroupfs\"\\n' "
             "> /etc/containers/containers.conf.d/pipglr-test.conf",
             input=test_registry.insecure_entry(host))  # fmt: skip
        publish(m, TEST_IMAGE)
        yield m
    finally:
        print(f"\nauto-update host logs: {dump_logs(root, HOST)}")
        inner = root.exec(HOST, "journalctl", "-u", "pipglr.service", "--no-pager",
                          check=False).stdout  # fmt: skip
        (LOG_DIR / "autoupdate-pipglr-service.log").write_text(inner)
        root.run("rm", "--force", "--ignore", "--time", "5", HOST, check=False)
        root.run("volume", "rm", "--force", HOST_VOLUME, check=False)
        stack.close()


def publish(m: Machine, source: str) -> str:
    """``invoke publish``'s code path: push ``source`` as :latest, verify; the digest."""
    pushed = registry.publish([source], f"docker://{m.image.rsplit(':', 1)[0]}", ["latest"],
                              tls_verify=False)  # fmt: skip
    return pushed[f"docker://{m.image}"]


def derived(m: Machine, tag: str, lines: str, files: dict[str, str] | None = None) -> str:
    """A local image FROM the test image plus ``lines``, built by root's podman."""
    with tempfile.TemporaryDirectory(prefix="pipglr-au-") as tmp:
        for name, text in (files or {}).items():
            (Path(tmp) / name).write_text(text)
            (Path(tmp) / name).chmod(0o755)
        (Path(tmp) / "Containerfile").write_text(f"FROM {TEST_IMAGE}\n{lines}\n")
        m.root.run("build", "-q", "-t", tag, tmp, timeout=300)
    return tag


def queue_job(fake_gitlab: Client, name: str, script: list[str]) -> int:
    spec = {"image": base.DEFAULT_TAG, "runner": TOKEN, "variables": {}}
    return fake_gitlab.add_job({**spec, "name": name, "script": script})


def quadlet_files(m: Machine, target: Path) -> list[Path]:
    """``pipglr quadlet --auto-update`` against the user's podman (the label is read and
    the podman version checked through it)."""
    argv = [sys.executable, "-m", "pipglr.ops.cli", "--image", m.image,
            "--podman", shlex.join(USER_PODMAN), "quadlet", "--auto-update",
            "--allow-host-ids",  # the machine's root: rootful, the machine's own ids
            "--dir", str(target)]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return sorted(target.iterdir())


def test_auto_update_takes_a_new_image_after_the_running_job_and_rolls_back_a_broken_one(
    machine: Machine, fake_gitlab: Client
) -> None:
    m = machine
    v1 = m.podman("pull", "-q", m.image).stdout.strip()
    # The operator's setup, with the image's own labels, as the user of that machine.
    m.sh("mkdir -p /root/pipglr && touch /root/pipglr/config.toml")
    m.podman("secret", "create", layout.TOKEN_SECRET, "-", input=TOKEN)
    m.sh(f"cd /root/pipglr && podman container runlabel register {m.image} && "
         f"podman secret rm {layout.TOKEN_SECRET} && "
         f"sed -i 's/^check_interval = .*/check_interval = 1/' config.toml && "
         f"podman secret create {layout.CONFIG_SECRET} config.toml && "
         f"podman container runlabel setupstorage {m.image} && "
         f"podman container runlabel setupcache {m.image}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="pipglr-quadlet-") as tmp:
        files = quadlet_files(m, Path(tmp))
        assert "AutoUpdate=registry" in (Path(tmp) / "pipglr.container").read_text()
        m.sh("mkdir -p /etc/containers/systemd")
        for path in files:
            m.root.run("cp", str(path), f"{HOST}:/etc/containers/systemd/{path.name}")
    m.sh("systemctl daemon-reload")
    generated = m.sh("systemctl cat pipglr.service").stdout
    assert "--sdnotify=healthy" in generated and "io.containers.autoupdate=registry" in generated
    started = time.monotonic()
    m.sh("systemctl start pipglr.service")  # returns once the health check passed
    assert m.sh("systemctl is-active pipglr.service").stdout.strip() == "active"
    assert m.podman("healthcheck", "run", "pipglr", check=False).returncode == 0
    assert m.running_digest() == v1_digest(m, v1)
    record = [f"v1 up and healthy after {time.monotonic() - started:.1f} s"]
    m.root.pipe_from(["podman", "save", base.DEFAULT_TAG], "exec", "-i", HOST, "podman",
                     "exec", "-i", "--user", layout.PODMAN.name, "pipglr", "env",
                     f"XDG_RUNTIME_DIR={layout.PODMAN_RUNTIME_DIR}", "podman", "load")  # fmt: skip

    # v2 while a job runs: the job finishes, then pipglr runs v2.
    job = queue_job(fake_gitlab, "in-flight", ["echo job-started", "sleep 20", "echo job-done"])
    trace_until(fake_gitlab, job, "job-started")
    v2 = publish(m, derived(m, "localhost/pipglr-au:v2", "LABEL io.pipglr.test.version=2"))
    started = time.monotonic()
    update = m.podman("auto-update", "--format", "{{.Unit}} {{.Image}} {{.Updated}}",
                      check=False, timeout=900)  # fmt: skip
    record.append(f"auto-update to v2: {time.monotonic() - started:.1f} s: {update.stdout.strip()}")
    assert update.returncode == 0, update.stdout + update.stderr
    assert "pipglr.service" in update.stdout and "true" in update.stdout, update.stdout
    finished = fake_gitlab.wait(job, timeout=300)
    assert finished["state"] == "success", describe(finished)
    assert JobLog.of(finished).has_line("job-done"), describe(finished)
    assert m.running_digest() == v2
    assert m.sh("systemctl is-active pipglr.service").stdout.strip() == "active"

    # v3 cannot start its runner: never healthy, the restart fails, back to v2.
    broken = "#!/bin/sh\necho 'pipglr test: a broken runner' >&2\nexit 1\n"
    v3_image = derived(m, "localhost/pipglr-au:v3",
                       "LABEL io.pipglr.test.version=3\nCOPY gitlab-runner /usr/local/bin/",
                       {"gitlab-runner": broken})  # fmt: skip
    v3 = publish(m, v3_image)
    assert v3 != v2
    dropin = "/etc/systemd/system/pipglr.service.d"
    m.sh(f"mkdir -p {dropin} && printf '[Service]\\nTimeoutStartSec={START_TIMEOUT}\\n' > "
         f"{dropin}/pipglr-test.conf && systemctl daemon-reload")  # fmt: skip
    started = time.monotonic()
    rollback = m.podman("auto-update", "--format", "{{.Unit}} {{.Image}} {{.Updated}}",
                        check=False, timeout=900)  # fmt: skip
    text = rollback.stdout + rollback.stderr
    record.append(f"auto-update to broken v3: {time.monotonic() - started:.1f} s: "
                  f"exit {rollback.returncode}: {rollback.stdout.strip()}")  # fmt: skip
    if "rolled back" not in text:  # say what the broken image's health check saw
        seen = m.podman("exec", "pipglr", "sh", "-c", f"{quadlet.HEALTH_CMD}; systemctl "
                        "status --no-pager pipglr-runner.service", check=False)  # fmt: skip
        pytest.fail(f"no rollback: {text}\nin the container: {seen.stdout}{seen.stderr}")
    assert m.sh("systemctl is-active pipglr.service").stdout.strip() == "active"
    assert m.running_digest() == v2
    after = fake_gitlab.wait(queue_job(fake_gitlab, "after-rollback", ["echo still-here"]),
                             timeout=300)  # fmt: skip
    assert after["state"] == "success", describe(after)
    (LOG_DIR / "autoupdate.txt").write_text("\n".join(record) + "\n")


def v1_digest(m: Machine, image_id: str) -> str:
    """The registry digest of the v1 image the user pulled."""
    return str(m.podman("image", "inspect", "--format", "{{.Digest}}", image_id).stdout.strip())


def secret_polls(m: Machine, swap: Callable[[], None]) -> tuple[int, int]:
    """Ask the machine's podman for the config.toml secret in a loop while ``swap``
    runs; (answers, misses)."""
    flag = "/tmp/pipglr-test-stop-poll"
    m.sh(f"rm -f {flag}")
    loop = (f"while [ ! -e {flag} ]; do podman secret inspect --format '{{{{.ID}}}}' "
            f"{layout.CONFIG_SECRET} >/dev/null 2>&1 && echo hit || echo miss; done")  # fmt: skip
    poller = subprocess.Popen(["podman", "exec", HOST, "sh", "-c", loop],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        time.sleep(1)
        swap()
        time.sleep(1)
    finally:
        m.sh(f"touch {flag}")
        out, _ = poller.communicate(timeout=60)
    lines = out.split()
    return len(lines), lines.count("miss")


@pytest.mark.security
def test_config_set_on_podman_5_never_leaves_the_secret_missing(
    machine: Machine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """On the machine's podman 5.4, `pipglr config set`'s swap (Operator.replace_config)
    is one `secret create --replace`: a loop asking for the secret all along never
    misses it. Control: the same loop during the remove-and-create swap that podman
    before 4.7 needs does catch the secret missing."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    op = Operator(Outer("rootful", ("podman", "exec", "-i", HOST, "podman")), machine.image)
    original = op.read_config()
    texts = [f"{original}# swap {n}\n" for n in range(4)]

    def swaps() -> None:
        for text in texts:
            op.replace_config(text)

    one_step = configsecret.SECRET_REPLACE_PODMAN
    try:
        polls, misses = secret_polls(machine, swaps)
        assert op.read_config() == texts[-1] and polls > 20, (polls, misses)
        assert misses == 0, f"{misses} of {polls} polls found no config.toml secret"
        monkeypatch.setattr(configsecret, "SECRET_REPLACE_PODMAN", (99,))
        old_polls, old_misses = secret_polls(machine, swaps)
        assert old_misses > 0, f"the control saw no gap in {old_polls} polls"
    finally:
        monkeypatch.setattr(configsecret, "SECRET_REPLACE_PODMAN", one_step)
        op.replace_config(original)
    backups = sorted(
        (tmp_path / "pipglr" / "backups").iterdir(), key=lambda p: p.stat().st_mtime_ns
    )
    assert [b.read_text() for b in backups[:4]] == [original, *texts[:3]], "every text kept"
    (LOG_DIR / "secret-swap.txt").write_text(
        f"podman {'.'.join(map(str, doctor.podman_version(op.outer.podman)))}, 4 swaps each\n"
        f"secret create --replace: {polls} polls, {misses} found no secret\n"
        f"secret rm + secret create: {old_polls} polls, {old_misses} found no secret\n"
    )
