"""systemd in the outer container: boot state, units, layout, logs."""

from __future__ import annotations

import pytest

from pipglr import layout, subids
from pipglr.build import context
from tests.image.conftest import Pipglr

pytestmark = [pytest.mark.image]


def test_systemd_running_without_failed_pipglr_units(pipglr: Pipglr) -> None:
    """systemd reaches running or degraded, and no pipglr unit has failed."""
    state = pipglr.outer.exec(pipglr.name, "systemctl", "is-system-running", "--wait", check=False)
    assert state.stdout.strip() in {"running", "degraded"}, f"system state: {state.stdout}"
    failed = pipglr.outer.exec(
        pipglr.name, "systemctl", "list-units", "--failed", "--plain", "--no-legend"
    ).stdout
    assert "pipglr" not in failed, f"failed units:\n{failed}"


def test_pipglr_units_pass_systemd_analyze_verify(pipglr: Pipglr) -> None:
    """systemd-analyze verify accepts every installed pipglr unit."""
    paths = [f"{layout.UNIT_DIR}/{unit}" for unit in layout.ALL_UNITS]
    result = pipglr.outer.exec(pipglr.name, "systemd-analyze", "verify", *paths, check=False)
    assert result.returncode == 0, f"verify failed:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize(
    "unit",
    [layout.PODMAN_SOCKET_UNIT, layout.PODMAN_SETUP_UNIT, layout.RUNNER_SERVICE_UNIT,
     layout.PRUNE_TIMER_UNIT],
)  # fmt: skip
def test_unit_active(pipglr: Pipglr, unit: str) -> None:
    """The socket, the setup, the runner and the prune timer are active."""
    host = pipglr.host()
    assert (
        host.service(unit).is_running
        or host.run("systemctl is-active %s", unit).stdout.strip() == "active"
    ), f"{unit} is not active"


def test_accounts_have_documented_ids(pipglr: Pipglr) -> None:
    """runner and podman exist with the uids/gids of pipglr.layout."""
    host = pipglr.host()
    for account in (layout.RUNNER, layout.PODMAN):
        user = host.user(account.name)
        assert (user.uid, user.gid, user.home) == (account.uid, account.gid, str(account.home))


def test_subid_files_are_the_computed_layout(pipglr: Pipglr) -> None:
    """/etc/subuid and /etc/subgid hold exactly what pipglr.subids computes."""
    host = pipglr.host()
    expected = subids.image_subid_file()
    assert host.file("/etc/subuid").content_string == expected
    assert host.file("/etc/subgid").content_string == expected


def test_computed_ranges_fit_this_outer_container(pipglr: Pipglr) -> None:
    """The baked ranges lie inside this outer container's uid map, one extent each."""
    uid_map = pipglr.outer.exec(pipglr.name, "cat", "/proc/self/uid_map").stdout
    ranges = subids.parse_subid_file(subids.image_subid_file(), layout.PODMAN.name)
    assert subids.misfits(ranges, subids.parse_id_map(uid_map)) == []


def test_storage_driver_chosen_at_runtime(pipglr: Pipglr) -> None:
    """The setup unit probed the volume and wrote the podman user's storage.conf: a
    transient store, images on the volume, container records on the runtime tmpfs."""
    journal = pipglr.journal(layout.PODMAN_SETUP_UNIT)
    assert "nested storage: overlay" in journal, journal
    template = "{{.Store.GraphDriverName}} {{.Store.GraphRoot}} {{.Store.TransientStore}}"
    info = pipglr.outer.exec(
        pipglr.name, "podman", "info", "--format", template, user=layout.PODMAN.name
    ).stdout.split()
    assert info == ["overlay", f"{layout.STORAGE_MOUNT}/storage", "true"], info
    database = f"{layout.PODMAN_RUNTIME_DIR}/containers/db.sql"
    pipglr.outer.exec(pipglr.name, "test", "-s", database)
    assert "transient nested store" in pipglr.journal(layout.PODMAN_SERVICE_UNIT)


def test_unit_output_reaches_podman_logs(pipglr: Pipglr) -> None:
    """`podman logs pipglr` shows the units' output (systemd has a console)."""
    logs = pipglr.outer.run("logs", pipglr.name).stdout
    for source in ("gitlab-runner[", "podman[", "pipglr: nested storage"):
        assert source in logs, f"no {source!r} in podman logs: {logs[-1500:]!r}"


@pytest.mark.security
def test_prod_image_has_no_package_manager(pipglr: Pipglr) -> None:
    """BUILD_TYPE=prod (the default) leaves neither apt nor dpkg in the image."""
    assert pipglr.settings.build_type == "prod"
    host = pipglr.host()
    for tool in ("apt-get", "apt", "dpkg"):
        assert not host.exists(tool), f"{tool} is still in the prod image"


@pytest.mark.security
def test_privileged_programs_are_exactly_the_kept_ones(pipglr: Pipglr) -> None:
    """setuid/setgid files are exactly pipglr's keep-list (fusermount3), and the only
    file capabilities are newuidmap's and newgidmap's (both lists in pipglr.build.context);
    no compiler either."""
    host = pipglr.host()
    found = host.check_output(r"find / -xdev -type f \( -perm -4000 -o -perm -2000 \)")
    assert sorted(found.split()) == sorted(context.SETUID_KEEP)
    listed = host.check_output("find / -xdev -type f -perm /111 -exec getcap {} +")
    caps = dict(line.split(" ", 1) for line in listed.splitlines() if line)
    assert caps == context.FILE_CAPABILITIES
    for tool in ("gcc", "cc", "make", "tcc", "clang"):
        assert not host.exists(tool), f"{tool} is in the image"


@pytest.mark.security
def test_root_file_system_is_read_only(pipglr: Pipglr) -> None:
    """Even root cannot write the image's files; the places written at runtime are
    tmpfs or volumes (positive control: root writes there), and the podman user's
    config is the one the setup unit wrote through its link into /run."""
    outer, name = pipglr.outer, pipglr.name
    for path in ("/etc/pipglr-probe", "/usr/local/bin/pipglr-probe", "/var/lib/pipglr-probe"):
        denied = outer.exec(name, "touch", path, check=False)
        assert denied.returncode != 0 and "Read-only file system" in denied.stderr, denied
    for path in ("/run/pipglr-probe", "/tmp/pipglr-probe", f"{layout.CACHE_MOUNT}/.probe"):
        outer.exec(name, "sh", "-c", f"touch {path} && rm {path}")
    link = outer.exec(name, "readlink", str(layout.PODMAN_CONFIG_DIR)).stdout.strip()
    assert link == str(layout.PODMAN_CONFIG_TARGET)
    conf = outer.exec(name, "cat", f"{layout.PODMAN_CONFIG_DIR}/storage.conf",
                      user=layout.PODMAN.name).stdout  # fmt: skip
    assert "driver" in conf, conf
