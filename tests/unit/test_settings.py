"""pipglr.settings: build args, validation, labels."""

from __future__ import annotations

import pytest

from pipglr import layout
from pipglr.errors import UsageError
from pipglr.settings import BuildSettings, load_image_facts, parse_bool


def test_defaults_match_the_documented_build_args() -> None:
    """Defaults: prod, daily, latest, amd64, gitlab.com, unprivileged nesting."""
    assert BuildSettings().build_args() == {
        "BASE_IMAGE": "docker.io/library/debian:trixie-slim",
        "BUILD_TYPE": "prod",
        "PRUNE_INTERVAL": "daily",
        "RUNNER_VERSION": "latest",
        "TARGETARCH": "amd64",
        "GITLAB_URL": "https://gitlab.com/",
        "NESTED_PRIVILEGED": "false",
        "GITLAB_ALLOW_HTTP": "false",
        "STORAGE_THRESHOLD": "25%",
    }


@pytest.mark.parametrize(
    ("arg", "value", "needle"),
    [
        ("BUILD_TYPE", "debug", "prod, dev"),
        ("TARGETARCH", "s390x", "amd64, arm64"),
        ("RUNNER_VERSION", "17.x", "v17.5.0"),
        ("GITLAB_URL", "gitlab.example.com", "https://"),
        ("PRUNE_INTERVAL", "daily\nweekly", "OnCalendar"),
        ("PRUNE_INTERVAL", "", "OnCalendar"),
        ("PRUNE_INTERVAL", "daily\x1b[2J", "OnCalendar"),
        ("PRUNE_INTERVAL", "daily\t", "OnCalendar"),
        ("PRUNE_INTERVAL", "%h", "OnCalendar"),
        ("PRUNE_INTERVAL", "daily;reboot", "OnCalendar"),
        ("STORAGE_THRESHOLD", "lots", "20GB"),
        ("STORAGE_THRESHOLD", "120%", "25%"),
        ("RUNNER_VERSION", "v17.5.0\n", "v17.5.0"),
        ("GITLAB_URL", "https://gitlab.example.com/\n", "https://"),
        ("NESTED_PRIVILEGED", "maybe", "true or false"),
        ("GITLAB_URL", "http://gitlab.lan/", "GITLAB_ALLOW_HTTP=true"),
        ("GITLAB_ALLOW_HTTP", "perhaps", "true or false"),
        ("NOT_AN_ARG", "x", "unknown build arg"),
    ],
)
def test_bad_build_args_say_what_is_allowed(arg: str, value: str, needle: str) -> None:
    """Each invalid value is a UsageError naming the valid choices."""
    with pytest.raises(UsageError) as info:
        BuildSettings.from_mapping({arg: value})
    assert needle in str(info.value)


def test_from_mapping_accepts_arg_names_and_ignores_none() -> None:
    """Build-arg style keys map to fields; None means "use the default"."""
    settings = BuildSettings.from_mapping(
        {"BUILD_TYPE": "dev", "NESTED_PRIVILEGED": "false", "TARGETARCH": None}
    )
    assert (settings.build_type, settings.nested_privileged, settings.target_arch) == (
        "dev",
        False,
        "amd64",
    )


@pytest.mark.parametrize(("given", "release"), [("latest", "latest"), ("17.5.0", "v17.5.0"),
                                                ("v17.5.0", "v17.5.0")])  # fmt: skip
def test_runner_release_path(given: str, release: str) -> None:
    """Versions map to the release bucket's vX.Y.Z directories."""
    assert BuildSettings(runner_version=given).runner_release == release


def test_oci_labels_carry_every_build_arg_and_the_runner_version() -> None:
    """Labels record each build arg value and the runner version."""
    settings = BuildSettings(runner_version="v17.5.0", nested_privileged=False)
    labels = settings.oci_labels()
    assert labels[layout.LABEL_RUNNER_VERSION] == "v17.5.0"
    for arg, value in settings.build_args().items():
        assert labels[layout.LABEL_BUILD_ARG_PREFIX + arg.lower()] == value
    assert labels["org.opencontainers.image.title"] == "pipglr"


def test_image_facts_round_trip() -> None:
    """The JSON baked into the image reads back to the same settings."""
    settings = BuildSettings(gitlab_url="https://gitlab.example.com/", nested_privileged=False)
    assert load_image_facts(settings.image_facts()) == settings


@pytest.mark.parametrize(("text", "value"), [("TRUE", True), ("no", False), ("1", True)])
def test_parse_bool(text: str, value: bool) -> None:
    """Booleans accept the usual spellings."""
    assert parse_bool("X", text) is value


@pytest.mark.parametrize(
    "interval",
    ["daily", "weekly", "*-*-* 03:00:00", "Mon..Fri 22:30", "Sat,Sun *-*-* 04:00", "*:0/15",
     "2026-12-24 18:00:00 UTC", "*-*~7 02:00"],
)  # fmt: skip
def test_calendar_expressions_pass(interval: str) -> None:
    """Positive control for the PRUNE_INTERVAL pattern: systemd.time(7) examples."""
    assert BuildSettings(prune_interval=interval).prune_interval == interval


def test_plain_http_gitlab_only_when_allowed() -> None:
    """http:// GitLab URLs need the explicit GITLAB_ALLOW_HTTP; https never does."""
    allowed = BuildSettings.from_mapping(
        {"GITLAB_URL": "http://10.0.0.5:8080/", "GITLAB_ALLOW_HTTP": "true"}
    )
    assert allowed.gitlab_allow_http and allowed.build_args()["GITLAB_ALLOW_HTTP"] == "true"
    assert load_image_facts(allowed.image_facts()) == allowed
    assert not BuildSettings(gitlab_url="https://gitlab.lan/").gitlab_allow_http
