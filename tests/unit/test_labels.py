"""pipglr.build.labels: the runlabel command lines."""

from __future__ import annotations

import pytest

from pipglr import layout
from pipglr.build import labels
from pipglr.errors import UsageError
from pipglr.settings import BuildSettings

IMAGE = "registry.example.com/pipglr:1"


def test_exactly_the_documented_labels() -> None:
    """The image carries register, setupstorage, setupcache, run and dumpconfig."""
    assert set(labels.all_labels(BuildSettings())) == {
        "register", "setupstorage", "setupcache", "run", "dumpconfig",
    }  # fmt: skip


@pytest.mark.parametrize("privileged", [True, False])
@pytest.mark.parametrize("name", list(labels.LABELS))
def test_label_text_survives_podmans_whitespace_split(name: str, privileged: bool) -> None:
    """Splitting the label text as runlabel does gives back the intended argv."""
    settings = BuildSettings(nested_privileged=privileged)
    text = labels.all_labels(settings)[name]
    assert labels.argv_from_text(text, IMAGE) == labels.argv(name, IMAGE, settings)
    assert text.startswith("podman run ") and "$IMAGE" in text


@pytest.mark.parametrize("bad", ["a b", "'quoted'", 'x"y', ""])
def test_label_text_rejects_arguments_podman_would_mangle(bad: str) -> None:
    """Whitespace or quotes inside an argument are refused at build time."""
    with pytest.raises(UsageError):
        labels.label_text(["podman", bad])


def test_register_takes_token_secret_and_current_directory() -> None:
    """register mounts the REGISTRATION_TOKEN secret and ./ for config.toml."""
    argv = labels.argv("register", IMAGE)
    assert argv[argv.index("--secret") + 1] == layout.TOKEN_SECRET
    assert f".:{layout.REGISTER_WORKDIR}" in argv
    assert argv[argv.index(IMAGE) + 1 :] == ["-m", layout.GUEST_MODULE, "register"]


def test_run_mounts_config_for_runner_only_and_both_volumes() -> None:
    """run: detached pipglr with systemd, runner-only secret, storage and cache."""
    argv = labels.argv("run", IMAGE)
    assert argv[argv.index("--name") + 1] == "pipglr"
    assert {"--detach", "--tty"} <= set(argv)
    assert argv[argv.index("--systemd") + 1] == "always"
    assert argv[argv.index("--secret") + 1] == "config.toml,uid=1000,gid=1000,mode=0400"
    volumes = [argv[i + 1] for i, a in enumerate(argv) if a == "--volume"]
    assert volumes == [
        f"pipglr-storage:{layout.STORAGE_MOUNT}",
        f"pipglr-cache:{layout.CACHE_MOUNT}",
        f"pipglr-runner:{layout.RUNNER_STATE_DIR}",
    ]
    assert argv[argv.index("--stop-timeout") + 1] == str(layout.OUTER_STOP_TIMEOUT)
    assert argv[-1] == IMAGE


def test_run_privileges_follow_nested_privileged() -> None:
    """Only NESTED_PRIVILEGED=true makes the outer container --privileged."""
    privileged = labels.argv("run", IMAGE, BuildSettings(nested_privileged=True))
    narrow = labels.argv("run", IMAGE, BuildSettings(nested_privileged=False))
    assert "--privileged" in privileged
    assert "--privileged" not in narrow
    for device in ("/dev/fuse", "/dev/net/tun"):
        assert device in privileged and device in narrow
    assert "seccomp=unconfined" in narrow and "label=disable" in narrow


@pytest.mark.parametrize(
    ("name", "volume", "mount"),
    [("setupstorage", "pipglr-storage", layout.STORAGE_MOUNT),
     ("setupcache", "pipglr-cache", layout.CACHE_MOUNT)],
)  # fmt: skip
def test_setup_labels_chown_only_the_top_directory(name: str, volume: str, mount: object) -> None:
    """setup labels chown the volume root to podman, never recursively."""
    argv = labels.argv(name, IMAGE)
    assert argv[argv.index("--entrypoint") + 1] == "/usr/bin/chown"
    assert f"{volume}:{mount}" in argv
    assert argv[argv.index(IMAGE) + 1 :] == ["1001:1001", str(mount)]
    assert "-R" not in argv and "--recursive" not in argv


def test_dumpconfig_prints_what_the_runner_uses() -> None:
    """dumpconfig runs the guest's dump-config as runner over the secret and the
    runner volume (read-only), so rotated tokens show."""
    argv = labels.argv("dumpconfig", IMAGE)
    assert argv[argv.index(IMAGE) + 1 :] == ["-m", layout.GUEST_MODULE, "dump-config"]
    assert argv[argv.index("--secret") + 1] == "config.toml,uid=1000,gid=1000"
    assert argv[argv.index("--user") + 1] == "1000:1000"
    assert f"pipglr-runner:{layout.RUNNER_STATE_DIR}:ro" in argv


def test_unknown_label_is_a_usage_error() -> None:
    """Asking for a label that does not exist names the valid ones."""
    with pytest.raises(UsageError, match="register"):
        labels.argv("start", IMAGE)


@pytest.mark.parametrize("secret", ["other-config", None])
def test_second_instance_differs_only_in_name_volumes_and_secret(secret: str | None) -> None:
    """A second instance keeps every option of run but its name, volumes and secret."""
    settings = BuildSettings()
    run = labels.argv("run", IMAGE, settings)
    second = labels.second_instance(settings, IMAGE, "bench", secret)
    assert second[second.index("--name") + 1] == "bench"
    assert f"bench-pipglr-storage:{layout.STORAGE_MOUNT}" in second
    assert f"bench-pipglr-cache:{layout.CACHE_MOUNT}" in second
    if secret is None:
        assert "--secret" not in second
    else:
        assert f"{secret},target=config.toml,uid=1000,gid=1000,mode=0400" in second
    options = {a for a in run if a.startswith("-")}
    assert options - {"--secret"} <= set(second)
