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
    ],
)
def test_volumes_may_not_hand_jobs_the_socket_or_the_tokens(volume: str) -> None:
    """A volumes entry exposing the nested API socket, the config secret or the runner
    state (the path, a directory above it, or a path in its directory) is refused in
    one line that names the entry."""
    text = GOOD + f'    volumes = ["/cache", "{volume}"]\n'
    with pytest.raises(ConfigError) as info:
        runnerconfig.check(runnerconfig.parse(text))
    message = str(info.value)
    assert volume in message and "\n" not in message and "remove it" in message


def test_ordinary_volumes_pass() -> None:
    """Positive control: destinations only, named volumes and unrelated host paths."""
    volumes = '["/cache", "certs:/etc/certs:ro", "/srv/ci-data:/data", "/run-data:/x"]'
    text = GOOD + f"    volumes = {volumes}\n"
    assert runnerconfig.check(runnerconfig.parse(text)) == ["one"]
