"""pipglr.ops.quadlet: units derived from the run label."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipglr import layout
from pipglr.build import labels
from pipglr.errors import UsageError
from pipglr.ops import quadlet
from pipglr.ops.lifecycle import resource_args, with_extra
from pipglr.settings import BuildSettings

IMAGE = "localhost/pipglr:latest"


def _files(privileged: bool = True) -> dict[str, str]:
    args = labels.argv("run", IMAGE, BuildSettings(nested_privileged=privileged))[1:]
    extra = resource_args("1", "1g")
    return quadlet.from_run_args(with_extra(args, IMAGE, extra), IMAGE).files


def test_container_unit_carries_every_run_option() -> None:
    """Name, secret, devices, volumes and the remaining options reach the unit."""
    text = _files()["pipglr.container"]
    for line in (
        f"Image={IMAGE}",
        "ContainerName=pipglr",
        "Secret=config.toml,uid=1000,gid=1000,mode=0400",
        "AddDevice=/dev/fuse",
        "AddDevice=/dev/net/tun",
        f"Volume=pipglr-storage.volume:{layout.STORAGE_MOUNT}",
        f"Volume=pipglr-cache.volume:{layout.CACHE_MOUNT}",
        "PodmanArgs=--tty",
        "PodmanArgs=--systemd=always",
        "PodmanArgs=--privileged",
        "ReadOnly=true",
        "Tmpfs=/run/secrets:rw,mode=0755",
        "PodmanArgs=--cpus=1",
        "PodmanArgs=--memory=1g",
        "Restart=always",
        "WantedBy=default.target",
    ):
        assert line in text.splitlines(), line
    assert "--detach" not in text


def test_unprivileged_variant_keeps_security_options() -> None:
    """NESTED_PRIVILEGED=false: security options, no --privileged."""
    text = _files(privileged=False)["pipglr.container"]
    assert "PodmanArgs=--security-opt=seccomp=unconfined" in text
    assert "AddCapability=NET_ADMIN" in text.splitlines(), "the egress guard's capability"
    assert "--privileged" not in text and "PodmanArgs=NET_ADMIN" not in text


def test_volume_units_keep_the_volume_names(tmp_path: Path) -> None:
    """pipglr-storage.volume names the existing volume, so data carries over."""
    written = quadlet.QuadletFiles(_files()).write(tmp_path)
    assert {p.name for p in written} == {
        "pipglr.container", "pipglr-storage.volume", "pipglr-cache.volume",
        "pipglr-runner.volume",
    }  # fmt: skip
    assert "VolumeName=pipglr-storage" in (tmp_path / "pipglr-storage.volume").read_text()


def test_not_a_run_label() -> None:
    """Anything but `run ... IMAGE` is refused."""
    with pytest.raises(UsageError):
        quadlet.from_run_args(["volume", "create"], IMAGE)


REGISTRY_IMAGE = "registry.example.com/ci/pipglr:latest"


def test_auto_update_unit_waits_for_health_and_names_the_registry_image() -> None:
    args = labels.argv("run", REGISTRY_IMAGE, BuildSettings())[1:]
    text = quadlet.from_run_args(args, REGISTRY_IMAGE, auto_update=True).files["pipglr.container"]
    lines = text.splitlines()
    for line in (
        f"Image={REGISTRY_IMAGE}",
        "AutoUpdate=registry",
        "Notify=healthy",
        "HealthCmd=/usr/bin/python3 -m pipglr.guest health",
    ):
        assert line in lines, line
    # The keys belong to [Container]; the graceful stop stays as long as without them.
    assert lines.index("Notify=healthy") < lines.index("[Service]")
    assert f"TimeoutStopSec={layout.OUTER_STOP_TIMEOUT + 30}" in lines
    assert "TimeoutStartFailureMode=kill" in lines  # a failed start must not wait an hour
    plain = quadlet.from_run_args(args, REGISTRY_IMAGE).files["pipglr.container"]
    assert "AutoUpdate" not in plain and "Notify" not in plain


@pytest.mark.parametrize(
    ("image", "version", "needle"),
    [
        ("localhost/pipglr:latest", (5, 4, 2), "needs the image as published in a registry"),
        ("pipglr:latest", (5, 4, 2), "pass --image REGISTRY/NAME:TAG"),
        (REGISTRY_IMAGE, (4, 9, 3), "needs podman 5.0 or newer (quadlet's Notify=healthy), "
         "this host has 4.9.3"),
        (REGISTRY_IMAGE, (), "this host has no answering podman:"),
    ],
)  # fmt: skip
def test_auto_update_refused_where_it_cannot_work(
    image: str, version: tuple[int, ...], needle: str
) -> None:
    with pytest.raises(UsageError, match=r"^--auto-update needs") as caught:
        quadlet.check_auto_update(image, version)
    assert needle in str(caught.value)
    assert "\n" not in str(caught.value)


def test_auto_update_accepted_for_a_registry_image_and_current_podman() -> None:
    quadlet.check_auto_update(REGISTRY_IMAGE, (5, 0, 0))
    quadlet.check_auto_update("127.0.0.1:5000/pipglr:latest", (5, 4, 2))
    quadlet.check_auto_update("localhost:5000/pipglr:latest", (5, 4, 2))


def test_stored_network_secrets_become_secret_lines() -> None:
    """What `pipglr quadlet` adds when the network secrets exist: the same --secret
    options as `pipglr up`, as Secret= keys (the uid of the login secret kept)."""
    args = labels.argv("run", IMAGE, BuildSettings())[1:]
    stored = labels.optional_secret_args(
        [layout.CONFIG_SECRET, layout.NETWORK_SECRET, layout.REGISTRY_AUTH_SECRET]
    )
    lines = (
        quadlet.from_run_args(with_extra(args, IMAGE, stored), IMAGE)
        .files["pipglr.container"]
        .splitlines()
    )
    assert f"Secret={layout.NETWORK_SECRET},mode=0400" in lines
    assert f"Secret={layout.REGISTRY_AUTH_SECRET},uid=1000,gid=1000,mode=0400" in lines
    plain = quadlet.from_run_args(args, IMAGE).files["pipglr.container"]
    assert layout.NETWORK_SECRET not in plain and layout.REGISTRY_AUTH_SECRET not in plain


#: systemd's C escapes (systemd.syntax(7)) the written units may use.
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'", "s": " "}


def _systemd_words(value: str) -> list[str]:
    """``value`` split as systemd (and quadlet) split ``Environment=``/``PodmanArgs=``:
    specifiers expanded (only ``%%`` may appear: any other would expand to something
    the user did not write, and fails here), then words separated by whitespace, double
    or single quotes grouping, C escapes decoded (an unknown one fails here)."""
    words: list[str] = []
    current: list[str] = []
    quote = ""
    started = False
    i = 0
    while i < len(value):
        char = value[i]
        if char == "%":
            assert value[i + 1 : i + 2] == "%", f"specifier %{value[i + 1 : i + 2]} would expand"
            current.append("%")
            started, i = True, i + 2
            continue
        if char == "\\":
            assert value[i + 1 : i + 2] in _ESCAPES, f"unknown escape in {value!r}"
            current.append(_ESCAPES[value[i + 1]])
            started, i = True, i + 2
            continue
        if quote:
            quote = "" if char == quote else quote
            current += [] if not quote else [char]
        elif char in "\"'":
            quote, started = char, True
        elif char.isspace():
            if started:
                words.append("".join(current))
            current, started = [], False
        else:
            current.append(char)
            started = True
        i += 1
    assert not quote, f"unterminated quote in {value!r}"
    if started:
        words.append("".join(current))
    return words


def _unit(extra: list[str]) -> list[str]:
    args = labels.argv("run", IMAGE, BuildSettings())[1:]
    files = quadlet.from_run_args(with_extra(args, IMAGE, extra), IMAGE).files
    return files["pipglr.container"].splitlines()


def _values(lines: list[str], key: str) -> list[str]:
    return [line.partition("=")[2] for line in lines if line.startswith(f"{key}=")]


TRICKY = [
    "PLAIN=value",
    "SPACES=two  words and  more ",
    "SPECIFIER=%h/%u 100%",
    "QUOTES=\"double\" and 'single'",
    "BACKSLASH=C:\\dir\\ end\\",
    "DOLLAR=$HOME ${X}",
]


def test_environment_values_round_trip_through_systemds_rules() -> None:
    """Failed before issue 21: `Environment=SPACES=two  words` split into words and
    `%h` expanded to the home directory; now each value is one quoted word, `%` doubled.
    PLAIN is the control: it always came through."""
    lines = _unit(resource_args(env=TRICKY))
    assert [_systemd_words(v) for v in _values(lines, "Environment")] == [[e] for e in TRICKY]
    assert 'Environment="SPECIFIER=%%h/%%u 100%%"' in lines
    assert 'Environment="BACKSLASH=C:\\\\dir\\\\ end\\\\"' in lines
    assert 'Environment="PLAIN=value"' in lines


def test_other_user_values_escape_specifiers_and_stay_one_word() -> None:
    """Failed before issue 21: `--volume /srv/%h` named the home directory and a
    `--cpus` with a space became two PodmanArgs words (an option of its own)."""
    lines = _unit(resource_args(cpus="1 --privileged", memory="1g",
                                volumes=["/srv/%h data:/data:ro"]))  # fmt: skip
    assert "Volume=/srv/%%h data:/data:ro" in lines
    podman_args = [w for v in _values(lines, "PodmanArgs") for w in _systemd_words(v)]
    assert "--cpus=1 --privileged" in podman_args and "--privileged" not in podman_args
    assert "PodmanArgs=--memory=1g" in lines  # the control: plain words stay unquoted
    # The label's own keys are unchanged (nothing to escape in them).
    assert f"Volume=pipglr-storage.volume:{layout.STORAGE_MOUNT}" in lines


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--env", "EVIL=1\nExecStartPre=/bin/sh -c x"], "--env 'EVIL' contains the control "
         "character '\\n'"),
        (["--env", "CR=1\r"], "--env 'CR' contains the control character '\\r'"),
        (["--volume", "/srv:/data\n[Service]"], "--volume contains the control character"),
        (["--cpus", "1\nExecStart=x"], "--cpus contains the control character"),
        (["--volume", "/srv:/data\\"], "--volume ends in a backslash"),
        (["--volume", "../x:/data"], None),
        (["--volume", "a/b:/data"], "--volume 'a/b' is not a podman name"),
    ],
)  # fmt: skip
def test_values_that_would_break_the_unit_are_refused(extra: list[str], needle: str | None) -> None:
    """Failed before issue 21: the newline became a directive of its own (and a volume
    name with a slash a unit file elsewhere). ``../x`` is the control: a path, accepted."""
    if needle is None:
        assert "Volume=../x:/data" in _unit(extra)
        return
    with pytest.raises(UsageError) as caught:
        _unit(extra)
    assert needle in str(caught.value)
    assert "\n" not in str(caught.value) and "ExecStart" not in str(caught.value)
