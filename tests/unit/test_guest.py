"""pipglr.guest: the in-image commands, on crafted files."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

import pytest

from pipglr import layout, subids
from pipglr.build import context
from pipglr.errors import IdLayoutError, PipglrError, UsageError
from pipglr.guest import cli, health, netplan, podmansetup, register
from pipglr.settings import BuildSettings

PLAN = netplan.SubnetPlan(netplan.CANDIDATES[0], netplan.CANDIDATES[1])
FACTS = BuildSettings(gitlab_url="https://gitlab.example.com/").image_facts()


def test_authentication_token_goes_to_ci_server_token(tmp_path: Path) -> None:
    """glrt- tokens use --token's env var; the token is never in argv."""
    args, env = register.register_command(tmp_path, "glrt-secret", FACTS)
    assert env["CI_SERVER_TOKEN"] == "glrt-secret" and "REGISTRATION_TOKEN" not in env
    assert not any("glrt-secret" in a for a in args)


def test_legacy_token_goes_to_registration_token(tmp_path: Path) -> None:
    """Legacy registration tokens use REGISTRATION_TOKEN."""
    _, env = register.register_command(tmp_path, "GR1348941abc", FACTS)
    assert env["REGISTRATION_TOKEN"] == "GR1348941abc" and "CI_SERVER_TOKEN" not in env


def test_register_arguments_follow_image_facts(tmp_path: Path) -> None:
    """URL, docker host, config path and privileged come from the image."""
    args, _ = register.register_command(tmp_path, "glrt-x", FACTS, ["--description", "d"])
    assert args[:3] == [str(layout.RUNNER_BINARY), "register", "--non-interactive"]
    assert args[args.index("--url") + 1] == "https://gitlab.example.com/"
    assert args[args.index("--docker-host") + 1] == layout.DOCKER_HOST
    assert args[args.index("--config") + 1] == str(tmp_path / "config.toml")
    assert "--docker-privileged" not in args and args[-2:] == ["--description", "d"]
    privileged = BuildSettings(nested_privileged=True).image_facts()
    assert "--docker-privileged" in register.register_command(tmp_path, "t", privileged)[0]


def _maps(tmp_path: Path, uid_map: str, subid: str) -> dict[str, Path]:
    files = {"subuid": subid, "subgid": subid, "uid_map": uid_map, "gid_map": uid_map}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return {name: tmp_path / name for name in files}


@pytest.mark.parametrize("extra", [["--url", "http://gitlab.lan/"], ["--url=http://gitlab.lan/"]])
def test_register_refuses_a_plain_http_url(tmp_path: Path, extra: list[str]) -> None:
    """An http --url (the CLI's, overriding the image's) is refused unless the image
    was built with GITLAB_ALLOW_HTTP=true; the message names the way out."""
    with pytest.raises(UsageError, match=r"plain http.*GITLAB_ALLOW_HTTP=true"):
        register.register_command(tmp_path, "glrt-x", FACTS, extra)
    allowed = BuildSettings(gitlab_url="https://g.example/", gitlab_allow_http=True)
    args, _ = register.register_command(tmp_path, "glrt-x", allowed.image_facts(), extra)
    assert register.effective_url(args) == "http://gitlab.lan/"


def test_check_id_maps_accepts_the_default_layout(tmp_path: Path) -> None:
    """The baked file fits a 65539-id rootless map and a rootful identity map."""
    for uid_map in ("0 1000 1\n1 100000 65539\n", "0 0 4294967295\n"):
        podmansetup.check_id_maps(**_maps(tmp_path, uid_map, subids.image_subid_file()))


def test_check_id_maps_explains_a_small_host_range(tmp_path: Path) -> None:
    """A host range of 65536 ids: one line saying 65539 are needed."""
    paths = _maps(tmp_path, "0 1000 1\n1 100000 65536\n", subids.image_subid_file())
    with pytest.raises(IdLayoutError) as info:
        podmansetup.check_id_maps(**paths)
    assert "65539" in str(info.value) and "\n" not in str(info.value)


def test_check_id_maps_explains_a_straddling_range(tmp_path: Path) -> None:
    """Enough ids but split: names the misfit range and the one that would work."""
    uid_map = "0 1000 1\n1 100000 30000\n30001 300000 40000\n"
    paths = _maps(tmp_path, uid_map, subids.image_subid_file())
    with pytest.raises(IdLayoutError) as info:
        podmansetup.check_id_maps(**paths)
    assert "1002+64537" in str(info.value) and "30001+" in str(info.value)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("35 24 0:30 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw", True),
        ("35 24 0:30 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw,mode=755", False),
        ("35 24 0:30 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw", False),
    ],
)
def test_cgroup2_detection(tmp_path: Path, line: str, expected: bool) -> None:
    """Only a cgroup2 mount at /sys/fs/cgroup counts."""
    (tmp_path / "mountinfo").write_text(line + "\n")
    assert podmansetup.cgroup2_mounted(tmp_path / "mountinfo") is expected


def test_storage_conf_for_fuse_names_the_mount_program() -> None:
    """fuse-overlayfs fallback writes mount_program; native overlay does not."""
    fuse = podmansetup.storage_conf(
        podmansetup.StorageChoice("overlay", "/usr/bin/fuse-overlayfs", "")
    )
    native = podmansetup.storage_conf(podmansetup.StorageChoice("overlay", None, ""))
    assert 'mount_program = "/usr/bin/fuse-overlayfs"' in fuse
    assert "mount_program" not in native and 'driver = "overlay"' in native


def test_containers_conf_bounds_the_nested_containers_logs() -> None:
    """log_size_max in [containers] (fails before: no limit, conmon's -1). The log
    driver is podman's k8s-file for the executor's json-file: the limit applies."""
    text = podmansetup.containers_conf(True, PLAN)
    parsed = tomllib.loads(text)
    assert parsed["containers"]["log_size_max"] == 64 * 2**20 == podmansetup.LOG_SIZE_MAX
    assert "log_driver" not in parsed["containers"], "the executor chooses json-file"
    smaller = podmansetup.containers_conf(True, PLAN, 8192)
    assert tomllib.loads(smaller)["containers"]["log_size_max"] == 8192
    with pytest.raises(ValueError, match="8192"):
        podmansetup.containers_conf(True, PLAN, 4096)


def test_containers_conf_disables_cgroups_only_without_v2() -> None:
    """Nested cgroups are disabled only where cgroup v2 is missing."""
    assert 'cgroups = "disabled"' in podmansetup.containers_conf(False, PLAN)
    assert "cgroups" not in podmansetup.containers_conf(True, PLAN).replace("cgroup_manager", "")


def test_check_config_exit_status_and_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A malformed config exits 78 (no restart) with a single pipglr: line."""
    bad = tmp_path / "config.toml"
    bad.write_text("[[runners]\n")
    assert cli.main(["check-config", str(bad)]) == layout.CONFIG_ERROR_STATUS
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pipglr: ")


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown guest command exits 2 and lists the valid ones."""
    assert cli.main(["frobnicate"]) == 2
    assert "setup-podman" in capsys.readouterr().err


@pytest.mark.parametrize("module", context.guest_modules())
def test_guest_modules_import_only_stdlib_and_guest_modules(module: str) -> None:
    """Modules copied into the image need only the standard library and the Python
    libraries the image installs from Debian (python3-tomlkit, python3-podman,
    python3-cryptography, python3-prometheus-client)."""
    source = (context.REPO / "pipglr" / module).read_text()
    debian = {
        p.removeprefix("python3-").replace("-", "_")
        for p in context.PACKAGES
        if p.startswith("python3-")
    }
    assert debian == {"tomlkit", "podman", "cryptography", "prometheus_client"}
    allowed = set(sys.stdlib_module_names) | {"pipglr"} | debian
    guest_names = {m.removesuffix(".py").split("/")[0] for m in context.guest_modules()}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
            if node.module == "pipglr":
                assert {a.name for a in node.names} <= guest_names | {"__version__"}
        else:
            continue
        for name in names:
            assert name.split(".")[0] in allowed, f"{module} imports {name}"
            if name.startswith("pipglr."):
                assert name.split(".")[1] in guest_names, f"{module} imports {name}"


def test_ping_answers_for_a_serving_socket(tmp_path: Path) -> None:
    """ping succeeds against a socket that answers 200, fails clearly otherwise."""
    import socket
    import threading

    path = tmp_path / "api.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(2)
    replies = [b"HTTP/1.1 200 OK\r\n\r\nOK", b"HTTP/1.1 500 Internal\r\n\r\n"]

    def serve() -> None:
        for reply in replies:
            conn, _ = server.accept()
            conn.recv(1024)
            conn.sendall(reply)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    health.ping(path)
    with pytest.raises(health.PipglrError, match="500"):
        health.ping(path)
    thread.join(5)
    server.close()
    with pytest.raises(health.PipglrError, match="api.sock"):
        health.ping(path)


@pytest.mark.parametrize(
    ("state", "now", "needle"),
    [
        ({"ActiveState": "activating", "SubState": "auto-restart"}, 100.0,
         "pipglr-runner.service is activating/auto-restart: `journalctl -u"),
        ({"ActiveState": "active", "SubState": "running",
          "ActiveEnterTimestampMonotonic": "98000000"}, 100.0, "started 2.0 s ago"),
    ],
)  # fmt: skip
def test_health_wants_a_runner_that_stays_up(
    monkeypatch: pytest.MonkeyPatch, state: dict[str, str], now: float, needle: str
) -> None:
    monkeypatch.setattr(health, "_unit", lambda unit: state)
    with pytest.raises(PipglrError, match=re.escape(needle)):
        health.health(now)


def test_health_passes_once_the_runner_settled_and_the_api_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settled = {"ActiveState": "active", "SubState": "running",
               "ActiveEnterTimestampMonotonic": "90000000"}  # fmt: skip
    monkeypatch.setattr(health, "_unit", lambda unit: settled)
    pinged: list[bool] = []
    monkeypatch.setattr(health, "ping", lambda: pinged.append(True))
    assert health.health(100.0).startswith("healthy")
    assert pinged == [True]


def test_network_files_are_linked_into_the_podman_config(tmp_path: Path) -> None:
    """The mirrors' drop-in becomes a registries.conf.d link; certs.d/HOST stays a real
    directory (run-time certificates can be added) holding a ca.crt link."""
    run_dir, config = tmp_path / "run", tmp_path / "config"
    (run_dir / "certs.d/10.199.79.1:5001").mkdir(parents=True)
    (run_dir / "certs.d/10.199.79.1:5001/ca.crt").write_text("PEM")
    (run_dir / "registries.conf").write_text("[[registry]]\n")
    line = podmansetup.link_network_files(config, run_dir)
    dropin = config / "registries.conf.d/pipglr-mirrors.conf"
    assert dropin.is_symlink() and dropin.read_text() == "[[registry]]\n"
    host = config / "certs.d/10.199.79.1:5001"
    assert host.is_dir() and not host.is_symlink() and not host.parent.is_symlink()
    assert (host / "ca.crt").is_symlink() and (host / "ca.crt").read_text() == "PEM"
    assert line == "mirrors drop-in, certs.d for 10.199.79.1:5001"
    (config / "certs.d/registry.test:5000").mkdir()  # what a test adds at run time
    (run_dir / "registries.conf").unlink()
    assert podmansetup.link_network_files(config, run_dir) == "certs.d for 10.199.79.1:5001"
    assert not dropin.is_symlink(), "no mirrors any more: no drop-in"
    assert (config / "certs.d/registry.test:5000").is_dir()


def test_no_network_files_link_nothing(tmp_path: Path) -> None:
    assert podmansetup.link_network_files(tmp_path / "config", tmp_path / "run") == "none"
    assert not (tmp_path / "config").exists()
