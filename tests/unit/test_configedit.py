"""pipglr.ops.configedit: comment-preserving edits, redaction, validation."""

from __future__ import annotations

import tomllib

import pytest

from pipglr import layout
from pipglr.errors import ConfigError, UsageError
from pipglr.ops import configedit

TEXT = f"""# keep this comment
concurrent = 1  # jobs at once

[[runners]]
  name = "one"
  url = "https://gitlab.example.com/"
  token = "glrt-0123456789"
  executor = "docker"
  [runners.docker]
    host = "{layout.DOCKER_HOST}"
    privileged = true
"""


def test_set_keeps_comments_and_changes_only_the_value() -> None:
    """Setting concurrent keeps every comment and other line."""
    result = configedit.set_value(TEXT, "concurrent", "4")
    assert result == TEXT.replace("concurrent = 1", "concurrent = 4")


@pytest.mark.parametrize(
    ("key", "raw", "value"),
    [
        ("runners.0.docker.privileged", "false", False),
        ("runners.0.limit", "2", 2),
        ("runners.0.docker.image", "alpine:3", "alpine:3"),
        ("runners.0.docker.volumes", '["/cache", "/x"]', ["/cache", "/x"]),
        ("check_interval", "3", 3),
    ],
)
def test_set_then_get(key: str, raw: str, value: object) -> None:
    """Dotted keys with array indexes; values parse as TOML, else as strings."""
    assert configedit.get(configedit.set_value(TEXT, key, raw), key) == value


def test_set_refuses_a_result_pipglr_cannot_run() -> None:
    """Pointing the runner away from pipglr's socket is refused."""
    with pytest.raises(ConfigError, match="podman socket"):
        configedit.set_value(TEXT, "runners.0.docker.host", '"unix:///var/run/docker.sock"')


@pytest.mark.parametrize("key", ["", "runners..x", "a b", "runners.9.limit", "runners.0"])
def test_bad_keys(key: str) -> None:
    """Malformed or impossible keys are usage errors."""
    with pytest.raises(UsageError):
        configedit.set_value(TEXT, key, "1")


def test_get_missing_key() -> None:
    """A key that is not there says so."""
    with pytest.raises(UsageError, match="no 'nope'"):
        configedit.get(TEXT, "nope")


def test_redact_hides_tokens_keeps_layout() -> None:
    """Tokens are redacted, comments stay, nothing else changes."""
    redacted = configedit.redact(TEXT)
    assert "glrt-0123456789" not in redacted and 'token = "glrt-…REDACTED"' in redacted
    assert "# keep this comment" in redacted and "concurrent = 1  # jobs at once" in redacted


def test_malformed_text_is_a_config_error() -> None:
    """Unparseable TOML is reported, not crashed on."""
    with pytest.raises(ConfigError):
        configedit.set_value("[[runners]\n", "concurrent", "1")
    with pytest.raises(ConfigError):
        configedit.redact("a = = 1")


def test_runner_count() -> None:
    """[[runners]] entries are counted."""
    assert configedit.runner_count(TEXT + TEXT[TEXT.index("[[runners]]") :]) == 2


def test_redact_hides_cache_credentials_and_secret_looking_environment() -> None:
    """Cache credentials of every kind and environment values named like secrets are
    hidden; other environment entries and names stay readable."""
    text = f"""concurrent = 2
[[runners]]
  name = "one"
  url = "https://gitlab.example.com/"
  token = "glrt-abc"
  executor = "docker"
  environment = ["FF_NETWORK_PER_BUILD=true", "NPM_TOKEN=npm_abcdefgh",
                 "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI", "DB_PASSWORD=hunter22"]
  [runners.docker]
    host = "{layout.DOCKER_HOST}"
    volumes = ["/cache"]
  [runners.cache.s3]
    AccessKey = "AKIAEXAMPLE123"
    SecretKey = "s3-secret-value"
    SessionToken = "session-token-value"
  [runners.cache.gcs]
    AccessID = "ci@example.iam"
    PrivateKey = "-----BEGIN PRIVATE KEY-----x"
  [runners.cache.azure]
    AccountName = "ciaccount"
    AccountKey = "azure-account-key"
"""
    redacted = configedit.redact(text)
    for secret in ("AKIAEXAMPLE123", "s3-secret-value", "session-token-value",
                   "-----BEGIN PRIVATE KEY-----x", "azure-account-key", "npm_abcdefgh",
                   "wJalrXUtnFEMI", "hunter22", "glrt-abc"):  # fmt: skip
        assert secret not in redacted, secret
    assert "FF_NETWORK_PER_BUILD=true" in redacted and "NPM_TOKEN=REDACTED" in redacted
    assert 'AccessID = "ci@example.iam"' in redacted and "ciaccount" in redacted
    assert tomllib.loads(redacted)["runners"][0]["docker"]["volumes"] == ["/cache"]
