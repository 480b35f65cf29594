"""pipglr.ops.doctor: every host check on crafted inputs."""

from __future__ import annotations

import datetime as dt
import os
import socket
from pathlib import Path

import pytest

from pipglr.ops import doctor, netdoctor
from pipglr.ops.doctor import FAIL, OK, WARN


@pytest.mark.parametrize(
    ("version", "status"),
    [(None, FAIL), ("4.2.1", FAIL), ("4.3.1", OK), ("5.4.2", OK), ("5.0.0-dev", OK)],
)
def test_podman_version(version: str | None, status: str) -> None:
    """podman must exist and be 4.3 or newer."""
    assert doctor.check_podman(version).status == status


@pytest.mark.parametrize(
    ("text", "status", "needle"),
    [
        ("alice:100000:65539\n", OK, "one range"),
        ("alice:100000:70000\nbob:200000:65536\n", OK, "70000"),
        ("alice:100000:65536\n", FAIL, "needs one range of 65539"),
        ("alice:100000:40000\nalice:300000:40000\n", FAIL, "split into 2 ranges"),
        ("bob:100000:65539\n", FAIL, "no /etc/subuid range"),
        ("alice:100000:65539\nbob:150000:65536\n", FAIL, "overlaps bob"),
        ("1000:100000:65539\n", OK, "one range"),
    ],
    ids=["exact", "larger", "too-small", "split", "missing", "overlap", "by-uid"],
)
def test_subids(text: str, status: str, needle: str) -> None:
    """One contiguous range of 65539+, not overlapping other users; fix names usermod."""
    finding = doctor.check_subids("alice", 1000, "uid", text)
    assert finding.status == status and needle in finding.detail, finding
    if status == FAIL:
        assert "usermod --add-subuids" in finding.fix and "alice" in finding.fix


def test_root_is_warned_that_jobs_get_host_ids() -> None:
    """Rootful use needs no subordinate ids, but the outer container then maps ids 1:1
    onto the host's: the doctor says so and points at running unprivileged."""
    rootful = doctor.check_subids("root", 0, "gid", "")
    assert rootful.status == WARN and "host's own ids" in rootful.detail
    assert "unprivileged user" in rootful.fix


def test_linger(tmp_path: Path) -> None:
    """Lingering missing is a warning with the loginctl fix; present is fine."""
    missing = doctor.check_linger("alice", tmp_path)
    assert missing.status == WARN and missing.fix.startswith("loginctl enable-linger alice")
    (tmp_path / "alice").touch()
    assert doctor.check_linger("alice", tmp_path).status == OK


def test_device_missing_and_not_a_device(tmp_path: Path) -> None:
    """A missing device suggests modprobe; a regular file is not a device."""
    missing = doctor.check_device(tmp_path / "fuse", "x", "fuse")
    assert missing.status == FAIL and missing.fix.startswith("modprobe fuse")
    (tmp_path / "file").touch()
    assert "not a character device" in doctor.check_device(tmp_path / "file", "x", "fuse").detail


def test_device_usable_for_this_user() -> None:
    """/dev/null is a character device everyone may use."""
    assert doctor.check_device(Path("/dev/null"), "x", "null").status == OK


def test_device_mode_for_another_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """For another user the mode bits decide: 0600 root-owned is unusable, 0666 fine."""
    real_stat = Path.stat

    class FakeStat:
        def __init__(self, mode: int) -> None:
            self.st_mode = mode
            self.st_uid = 0

    for mode, status in ((0o20600, FAIL), (0o20666, OK)):
        monkeypatch.setattr(Path, "stat", lambda self, m=mode: FakeStat(m))
        finding = doctor.check_device(Path("/dev/fuse"), "x", "fuse", uid=os.geteuid() + 4242)
        assert finding.status == status, finding
        if status == FAIL:
            assert "chmod 0666 /dev/fuse" in finding.fix
    monkeypatch.setattr(Path, "stat", real_stat)


@pytest.mark.parametrize(
    ("cgroup2", "controllers", "status", "needle"),
    [
        (False, [], WARN, "not be enforced"),
        (True, ["cpu", "pids"], WARN, "memory not delegated"),
        (True, ["cpuset", "cpu", "io", "memory", "pids"], OK, "delegated"),
    ],
)
def test_cgroups(cgroup2: bool, controllers: list[str], status: str, needle: str) -> None:
    """Limits are enforced only with cgroup v2 and cpu/memory/pids delegated."""
    finding = doctor.check_cgroups(cgroup2, controllers, "alice")
    assert finding.status == status and needle in finding.detail


@pytest.mark.parametrize(
    ("kernel", "status"), [("6.1.0-13-amd64", OK), ("5.13.0", OK), ("5.10.0-28", WARN)]
)
def test_overlay(kernel: str, status: str) -> None:
    """Native rootless overlay from kernel 5.13."""
    assert doctor.check_overlay(kernel).status == status


@pytest.mark.parametrize(("gib", "status"), [(1, FAIL), (5, WARN), (50, OK)])
def test_disk(gib: int, status: str) -> None:
    """Under 2 GiB blocks, under 10 GiB warns."""
    assert doctor.check_disk(Path("/v"), gib * 2**30).status == status


def test_pipglr_objects() -> None:
    """Missing secret/volumes are warnings naming the label or command that makes them."""
    findings = doctor.check_pipglr_objects([], ["pipglr-cache"])
    by_check = {f.check: f for f in findings}
    assert by_check["secret config.toml"].status == WARN
    assert "setupstorage" in by_check["volume pipglr-storage"].fix
    assert by_check["volume pipglr-cache"].status == OK
    assert all(not f.blocks for f in findings)


def test_render_shows_fix_only_for_problems() -> None:
    """Rows carry ✓/!/✗; only non-ok rows get a fix line."""
    text = doctor.render(
        [doctor.Finding("a", OK, "fine", "unused"), doctor.Finding("bb", FAIL, "broken", "do x")]
    )
    assert text.splitlines() == ["✓ a   fine", "✗ bb  broken", "      fix: do x"]


def test_colour_only_when_asked() -> None:
    """ANSI colour wraps the symbol only with colour=True (a terminal)."""
    rows = [doctor.Finding("a", FAIL, "broken", "fix it")]
    assert "\033[" not in doctor.render(rows)
    assert doctor.render(rows, colour=True).startswith("\033[31m✗\033[0m a")


@pytest.mark.parametrize(
    ("values", "status", "words"),
    [
        ({"user.max_user_namespaces": "15000\n"}, doctor.OK, "allowed"),
        ({"user.max_user_namespaces": "0\n"}, doctor.FAIL, "max_user_namespaces=0"),
        ({"kernel.unprivileged_userns_clone": "0\n"}, doctor.FAIL, "unprivileged_userns_clone=0"),
        ({"kernel.apparmor_restrict_unprivileged_userns": "1\n"}, doctor.WARN, "AppArmor"),
        ({"kernel.apparmor_restrict_unprivileged_userns": "0\n"}, doctor.OK, "allowed"),
        ({name: None for name in doctor.USERNS_SYSCTLS}, doctor.OK, "allowed"),
    ],
)
def test_userns_sysctls(values: dict[str, str | None], status: str, words: str) -> None:
    """Each sysctl that stops rootless podman is named with its fix; absent ones are fine."""
    finding = doctor.check_userns(values)
    assert finding.status == status and words in finding.detail, finding
    assert (finding.fix != "") == (status != doctor.OK), finding


NOW = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("days", "status", "words"),
    [(-1, FAIL, "CN=Corp expired on 2026-02-28"), (10, WARN, "expires on 2026-03-11 (10 days)"),
     (29.9, WARN, "(29 days)"), (30.1, OK, "valid until 2026-03-31")],
)  # fmt: skip
def test_ca_expiry(days: float, status: str, words: str) -> None:
    """A stored CA: expired blocks, within 30 days warns; the fix replaces it by name."""
    expiry = NOW + dt.timedelta(days=days)
    finding = netdoctor.check_ca_expiry("corp", [("CN=Other", NOW.replace(year=2030)),
                                              ("CN=Corp", expiry)], NOW)  # fmt: skip
    assert (finding.check, finding.status) == ("CA corp", status) and words in finding.detail
    if status != OK:
        assert "pipglr ca remove corp && pipglr ca add FILE --name corp" in finding.fix


def test_mirror_reachability_with_a_stand_in() -> None:
    def reach(host: str, port: int, timeout: float) -> str | None:
        assert timeout == netdoctor.MIRROR_TIMEOUT == 3.0
        return None if port == 443 else "timed out"

    ok, down = netdoctor.check_mirrors([("docker.io", "m.corp"), ("quay.io", "[fd00::1]:5000")],
                                    reach)  # fmt: skip
    assert (ok.check, ok.status, ok.detail) == (
        "mirror m.corp", OK, "answers on port 443 (mirror of docker.io)"
    )  # fmt: skip
    assert down.status == WARN and "unreachable from this host (timed out)" in down.detail
    assert down.fix.endswith("`pipglr mirror remove quay.io`")


def test_tcp_connect_answers_and_refuses() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert netdoctor.tcp_connect("127.0.0.1", port, 3.0) is None
    # The listener is closed: nothing answers on that port any more.
    refused = netdoctor.tcp_connect("127.0.0.1", port, 3.0)
    assert refused is not None and "refused" in refused.lower()


def test_gather_reports_the_disk_bounds_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """Failed before issue 21 (no such row): `pipglr doctor` says which bounds the
    filesystem under the volumes has, here for podman's default path (podman not
    answering). The disk row before it is the control."""
    monkeypatch.setattr(doctor, "_run", lambda args: None)
    checks = [f.check for f in doctor.gather()]
    assert checks.count("disk bounds") == 1
    assert checks.index("disk bounds") == checks.index("disk") + 1
