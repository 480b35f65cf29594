"""pipglr.guest.runnerstate: the runner's working config keeps rotated tokens."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from pipglr import layout, netboot, runnerconfig
from pipglr.errors import ConfigError
from pipglr.guest import cli, runnerstate

SECRET = """# operator's comment stays
concurrent = 4

[[runners]]
  name = "one"
  url = "https://gitlab.example.com/"
  id = 7
  token = "glrt-original"
  token_obtained_at = 2026-11-01T00:00:00Z
  token_expires_at = 2026-12-01T00:00:00Z
  executor = "docker"
  [runners.docker]
    host = "unix:///run/pipglr/podman.sock"
"""


def rotated(token: str, obtained: str) -> str:
    return (
        SECRET.replace("glrt-original", token)
        .replace("2026-11-01T00:00:00Z", obtained)
        .replace("2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z")
        .replace("concurrent = 4", "concurrent = 1")
    )


def test_without_state_the_secret_is_used_as_is() -> None:
    """First start: the working copy is the secret, byte for byte."""
    assert runnerstate.effective_config(SECRET, None) == (SECRET, 0)


def test_a_rotated_token_is_carried_over_and_nothing_else() -> None:
    """A newer token from the runner's copy wins; the operator's settings stay."""
    text, carried = runnerstate.effective_config(
        SECRET, rotated("glrt-rotated", "2026-11-20T00:00:00Z")
    )
    config = tomllib.loads(text)
    assert carried == 1
    assert config["runners"][0]["token"] == "glrt-rotated", text
    assert str(config["runners"][0]["token_expires_at"]).startswith("2027-01-01"), text
    assert config["concurrent"] == 4, "settings come from the secret"
    assert "# operator's comment stays" in text


def test_an_older_copy_does_not_override_a_new_secret() -> None:
    """The operator re-registered (newer token in the secret): the secret wins."""
    text, carried = runnerstate.effective_config(
        SECRET, rotated("glrt-stale", "2026-10-01T00:00:00Z")
    )
    assert carried == 0 and "glrt-original" in text


def test_runners_are_matched_by_url_and_id() -> None:
    """A token of another runner id is never taken."""
    other = rotated("glrt-other", "2026-11-20T00:00:00Z").replace("id = 7", "id = 8")
    assert runnerstate.effective_config(SECRET, other)[1] == 0


def test_a_damaged_copy_is_replaced_by_the_secret() -> None:
    """A working copy that is not TOML does not stop the runner."""
    assert runnerstate.effective_config(SECRET, "[[runners]\n") == (SECRET, 0)


def test_a_bad_secret_is_still_a_config_error() -> None:
    """The secret is checked first, with the usual one-line error."""
    with pytest.raises(ConfigError, match="no \\[\\[runners\\]\\]"):
        runnerstate.effective_config("concurrent = 1\n", None)


def test_prepare_writes_a_private_copy(tmp_path: Path) -> None:
    """The working copy is written 0600 and read back on the next start."""
    secret = tmp_path / "secret.toml"
    secret.write_text(SECRET)
    state = tmp_path / "state" / "config.toml"
    state.parent.mkdir()
    assert runnerstate.prepare(secret, state) == (runnerstate.with_listen_address(SECRET), 0)
    assert state.stat().st_mode & 0o777 == 0o600
    state.write_text(rotated("glrt-rotated", "2026-11-20T00:00:00Z"))
    text, carried = runnerstate.prepare(secret, state)
    assert carried == 1 and "glrt-rotated" in state.read_text() == text


def test_prepare_names_the_volume_when_the_state_dir_is_read_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No writable state directory: one line naming the run label's volume."""
    secret = tmp_path / "secret.toml"
    secret.write_text(SECRET)
    monkeypatch.setattr(runnerstate.os, "access", lambda *_: False)  # as if not root
    with pytest.raises(ConfigError, match="pipglr-runner"):
        runnerstate.prepare(secret, tmp_path / "config.toml")
    assert not (tmp_path / "config.toml").exists()


JOBS = netboot.job_settings(
    True,
    {"HTTP_PROXY": "http://proxy.corp:3128", "http_proxy": "http://proxy.corp:3128",
     "NO_PROXY": "localhost"},
)  # fmt: skip
OPERATOR = SECRET.replace(
    '  executor = "docker"\n',
    '  executor = "docker"\n  environment = ["HTTP_PROXY=http://mine:1", "A=b"]\n'
    '  tls-ca-file = "/etc/gitlab-ca.crt"\n',
).replace(
    '    host = "unix:///run/pipglr/podman.sock"\n',
    '    host = "unix:///run/pipglr/podman.sock"\n'
    '    volumes = ["/cache", "/srv/ca.crt:/etc/pipglr/ca-certificates.crt:ro"]\n',
)


def test_job_settings_are_added_to_a_plain_runner() -> None:
    """Environment, the bundle's mount and tls-ca-file arrive; the rest is the secret."""
    runner = tomllib.loads(runnerstate.with_job_settings(SECRET, JOBS))["runners"][0]
    assert runner["environment"] == list(JOBS.environment)
    assert runner["docker"]["volumes"] == list(JOBS.volumes)
    assert runner["tls-ca-file"] == str(layout.CA_BUNDLE)
    assert runner["token"] == "glrt-original"


def test_the_operators_settings_win() -> None:
    """Same variable, same destination, own tls-ca-file: the operator's stay, no
    duplicate key; the variables the operator does not set are still added."""
    text = runnerstate.with_job_settings(OPERATOR, JOBS)
    runner = tomllib.loads(text)["runners"][0]
    names = [e.split("=", 1)[0].upper() for e in runner["environment"]]
    assert names.count("HTTP_PROXY") == 1 and "HTTP_PROXY=http://mine:1" in runner["environment"]
    assert "NO_PROXY=localhost" in runner["environment"]
    assert f"SSL_CERT_FILE={layout.JOB_CA_BUNDLE}" in runner["environment"]
    assert runner["docker"]["volumes"] == [
        "/cache", "/srv/ca.crt:/etc/pipglr/ca-certificates.crt:ro"
    ]  # fmt: skip
    assert runner["tls-ca-file"] == "/etc/gitlab-ca.crt"


def test_no_job_settings_leave_the_text_alone() -> None:
    empty = netboot.job_settings(False, {})
    assert runnerstate.with_job_settings(SECRET, empty) == SECRET


def test_the_bundle_mount_passes_the_volume_check() -> None:
    """runnerconfig refuses protected sources (positive control), not the bundle."""
    runnerconfig.check_volumes("one", list(JOBS.volumes))
    with pytest.raises(ConfigError, match="would give every job"):
        runnerconfig.check_volumes("one", ["/run/secrets:/s:ro"])


def test_prepare_adds_job_settings_but_dump_config_does_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The runner's copy has the additions; the secret and dump-config stay the
    operator's (with rotated tokens) — a dump stored again does not freeze them."""
    secret = tmp_path / "secret.toml"
    secret.write_text(SECRET)
    state = tmp_path / "config.toml"
    text, _ = runnerstate.prepare(secret, state, JOBS)
    assert state.read_text() == text and "NO_PROXY=localhost" in text
    assert secret.read_text() == SECRET
    assert cli.main(["dump-config", str(secret), str(state)]) == 0
    assert capsys.readouterr().out == SECRET
    again, _ = runnerstate.prepare(secret, state, JOBS)
    assert again == text, "a second start adds nothing twice"


def test_the_working_copy_listens_on_loopback_unless_the_operator_chose() -> None:
    """Without listen_address the copy gets the global RUNNER_LISTEN_ADDRESS (before
    the tables, so it is global); the operator's own one, even empty, is kept."""
    text = runnerstate.with_listen_address(SECRET)
    config = tomllib.loads(text)
    assert config["listen_address"] == layout.RUNNER_LISTEN_ADDRESS
    assert "listen_address" not in config["runners"][0]
    assert text.replace(f'listen_address = "{layout.RUNNER_LISTEN_ADDRESS}"\n', "") == SECRET
    for own in ('"0.0.0.0:9999"', '""'):
        chosen = SECRET.replace("concurrent = 4", f"concurrent = 4\nlisten_address = {own}")
        assert runnerstate.with_listen_address(chosen) == chosen
        assert runnerconfig.check(tomllib.loads(chosen)) == ["one"], "the check accepts it"


def test_prepare_writes_the_listen_address_once(tmp_path: Path) -> None:
    """Every start derives it again from the secret: never twice, never frozen."""
    secret = tmp_path / "secret.toml"
    secret.write_text(SECRET)
    state = tmp_path / "config.toml"
    first, _ = runnerstate.prepare(secret, state)
    again, _ = runnerstate.prepare(secret, state)
    assert first == again == state.read_text()
    assert tomllib.loads(again)["listen_address"] == layout.RUNNER_LISTEN_ADDRESS
    assert again.count("listen_address") == 1
