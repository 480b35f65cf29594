"""pipglr.runnerconfig: clear errors for a missing or malformed config.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipglr import layout, runnerconfig
from pipglr.errors import ConfigError
from tests.unit.samples import GOOD_CONFIG

GOOD = GOOD_CONFIG


def test_good_config_lists_runners(tmp_path: Path) -> None:
    """A valid config passes and names its runners."""
    path = tmp_path / "config.toml"
    path.write_text(GOOD)
    assert runnerconfig.check_file(path) == ["one"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("concurrent = 1\n[[runners]\n", "not valid TOML"),
        ("concurrent = 1\n", "no [[runners]]"),
        (GOOD.replace('  token = "glrt-abc"\n', ""), "has no 'token'"),
        (GOOD.replace(layout.DOCKER_HOST, "unix:///var/run/docker.sock"), "podman socket"),
    ],
    ids=["malformed", "no-runners", "no-token", "wrong-docker-host"],
)
def test_bad_config_is_one_line_with_the_fix(tmp_path: Path, text: str, needle: str) -> None:
    """Each problem is one line naming the cause and the secret-replacing fix."""
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        runnerconfig.check_file(path)
    message = str(info.value)
    assert needle in message and "\n" not in message
    assert "podman secret create config.toml" in message


def test_malformed_config_names_the_position() -> None:
    """The TOML error keeps its line and column."""
    with pytest.raises(ConfigError, match="line 2"):
        runnerconfig.parse("a = 1\nb = = 2\n")


def test_missing_file_says_how_to_create_the_secret(tmp_path: Path) -> None:
    """No mounted secret: create it and use the run label."""
    with pytest.raises(ConfigError) as info:
        runnerconfig.check_file(tmp_path / "config.toml")
    assert "not mounted" in str(info.value) and "runlabel run" in str(info.value)


def test_unreadable_file_points_at_the_run_label(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret the user cannot read (EACCES): recreate with the run label."""
    path = tmp_path / "config.toml"
    path.write_text(GOOD)

    def denied(self: Path) -> str:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", denied)
    with pytest.raises(ConfigError, match="not readable"):
        runnerconfig.check_file(path)


@pytest.mark.parametrize(
    "volume",
    [
        f"{layout.SOCKET_PATH}:/var/run/docker.sock",
        f"{layout.SOCKET_DIR}:/pipglr",
        "/run:/host-run:ro",
        "/:/host",
        "/run//pipglr/../pipglr:/x",
        f"{layout.RUNNER_STATE_DIR}/config.toml:/c.toml:ro",
        "/var/lib:/var-lib",
        f"{layout.SECRET_DIR}:/secrets",
        # Refused since issue 21 (passed before): the image's spellings and links ...
        "/var/run/pipglr/podman.sock:/var/run/docker.sock",
        "//run/pipglr/:/x",
        "/var/run/../run/secrets:/s",
        "/var/lock/../../run/secrets/config.toml:/c",
        "/home/runner/.docker/config.json:/auth.json:ro",
        # ... and the paths protected now
        f"{layout.STORAGE_MOUNT}:/storage",
        f"{layout.STORAGE_MOUNT}/storage/overlay:/o",
        f"{layout.PODMAN.home}:/h",
        f"{layout.PODMAN_RUNTIME_DIR}:/r",
        "/var/run/user/1001/podman/podman.sock:/d.sock",
        f"{layout.PODMAN_CONFIG_DIR}:/c",
        f"{layout.CACHE_MOUNT}:/cache",
        f"{layout.CACHE_MOUNT}/:/all-caches:ro",
        "/proc:/p",
        "/proc/1/environ:/e",
        "/sys/fs/cgroup:/cg",
        "/dev/fuse:/dev/fuse",
    ],
)
def test_volumes_may_not_hand_jobs_the_socket_or_the_tokens(volume: str) -> None:
    """A volumes entry exposing the nested API socket, the secrets, the runner state,
    the nested storage, the podman user's runtime directory, the whole cache volume or
    /proc, /sys, /dev (the path, a directory above it, or a path in it, spelled any way
    the image resolves to it) is refused in one line that names the entry."""
    text = GOOD + f'    volumes = ["/cache", "{volume}"]\n'
    with pytest.raises(ConfigError) as info:
        runnerconfig.check(runnerconfig.parse(text))
    message = str(info.value)
    assert volume in message and "\n" not in message and "remove it" in message


def test_ordinary_volumes_pass() -> None:
    """Positive control: destinations only, named volumes, unrelated host paths, a
    subdirectory of the cache volume (the executor's business), the trust bundle by
    its link, and look-alike names."""
    volumes = (
        '["/cache", "certs:/etc/certs:ro", "/srv/ci-data:/data", "/run-data:/x", '
        '"/cache/shared-tools:/tools:ro", "/var/runx:/y", "/devices:/z", '
        '"/etc/ssl/certs/ca-certificates.crt:/ca.crt:ro", "/home/runner:/h:ro"]'
    )
    text = GOOD + f"    volumes = {volumes}\n"
    assert runnerconfig.check(runnerconfig.parse(text)) == ["one"]


@pytest.mark.parametrize(
    ("text", "resolved"),
    [
        ("/var/run/pipglr/podman.sock", "/run/pipglr/podman.sock"),
        ("//run//pipglr/", "/run/pipglr"),
        ("/run/./pipglr/../secrets/", "/run/secrets"),
        ("/var/run/../secrets", "/secrets"),  # the kernel's walk, not /var/secrets
        ("/var/lock/x", "/run/lock/x"),
        ("/home/podman/.config/containers/storage.conf",
         f"{layout.PODMAN_CONFIG_TARGET}/storage.conf"),
        ("/home/runner/.docker/config.json", str(layout.REGISTRY_AUTH_PATH)),
        ("/../..", "/"),
        ("/var/runx", "/var/runx"),
    ],
)  # fmt: skip
def test_paths_resolve_as_the_image_walks_them(text: str, resolved: str) -> None:
    assert str(runnerconfig.image_path(text)) == resolved


def refused(text: str) -> str:
    """The one-line refusal of ``text``; fails when it is accepted."""
    with pytest.raises(ConfigError) as info:
        runnerconfig.check(runnerconfig.parse(text))
    message = str(info.value)
    assert "\n" not in message and "podman secret create config.toml" in message, message
    return message


@pytest.mark.parametrize("executor", ["shell", "ssh", "docker+machine", "kubernetes"])
def test_only_the_docker_executor_is_accepted(executor: str) -> None:
    """A shell executor's jobs would run as user runner beside the token, exempt from
    the egress guard: refused (accepted before issue 21), naming the key and the fix."""
    message = refused(GOOD.replace('executor = "docker"', f'executor = "{executor}"'))
    assert f"executor = {executor!r}" in message and 'set executor = "docker"' in message
    assert "egress guard exempts" in message


@pytest.mark.parametrize(
    ("setting", "needle"),
    [
        ('cache_dir = "/"', "cache_dir = '/'"),
        ('cache_dir = "/run"', "cache_dir = '/run'"),
        ('cache_dir = "/var/run/secrets"', "cache_dir = '/var/run/secrets'"),
        ('ipcmode = "host"', "ipcmode = 'host'"),
        ('network_mode = "host"', "network_mode = 'host'"),
        ('devices = ["/dev/fuse"]', "devices = ['/dev/fuse']"),
        ('services_devices = { "svc" = ["/dev/net/tun"] }', "services_devices"),
        ('device_cgroup_rules = ["c 10:229 rwm"]', "device_cgroup_rules"),
        ('cap_add = ["NET_ADMIN", "SYS_ADMIN"]', "gives jobs SYS_ADMIN"),
        ('cap_add = ["cap_sys_module"]', "gives jobs cap_sys_module"),
        ('cap_add = ["ALL"]', "gives jobs ALL"),
        ('cap_add = ["DAC_READ_SEARCH"]', "gives jobs DAC_READ_SEARCH"),
        ('security_opt = ["seccomp=unconfined"]', "switches confinement off (seccomp"),
        ('security_opt = ["seccomp:unconfined"]', "(seccomp:unconfined)"),
        ('security_opt = ["apparmor=unconfined"]', "(apparmor=unconfined)"),
        ('security_opt = ["no-new-privileges", "label=disable"]', "(label=disable)"),
        ('security_opt = ["label:type:spc_t"]', "(label:type:spc_t)"),
        ('security_opt = ["systempaths=unconfined"]', "(systempaths=unconfined)"),
        ('security_opt = ["unmask=ALL"]', "(unmask=ALL)"),
        ('services_security_opt = ["seccomp=unconfined"]', "services_security_opt"),
    ],
)
def test_settings_that_unconfine_jobs_are_refused(setting: str, needle: str) -> None:
    """Each refused in one line naming the key, its value and the fix (all accepted
    before issue 21)."""
    message = refused(GOOD + f"    {setting}\n")
    assert needle in message and "[runners.docker]" in message, message
    assert "remove" in message or "set cache_dir" in message, message


@pytest.mark.parametrize(
    "setting",
    [
        'cache_dir = "/cache"',
        'cache_dir = "/cache/pipglr"',
        'ipcmode = "shareable"',
        'network_mode = "my-network"',
        'cap_add = ["NET_ADMIN", "CAP_NET_RAW", "SYS_PTRACE"]',
        'cap_drop = ["ALL"]',
        'security_opt = ["no-new-privileges", "seccomp=/etc/pipglr/profile.json",'
        ' "label=level:s0:c100,c200"]',
        "privileged = true",
    ],
)
def test_what_an_operator_may_need_passes(setting: str) -> None:
    """Positive control: capabilities over the job's own namespaces, hardening options,
    a seccomp profile file, the cache volume as cache_dir, and privileged (the
    documented opt-in, not refused here)."""
    assert runnerconfig.check(runnerconfig.parse(GOOD + f"    {setting}\n")) == ["one"]
