"""pipglr.customsection: the [runners.custom] section of pipglr's driver, and how the
config check, the privilege choice and the runner's working copy treat a custom runner."""

from __future__ import annotations

import tomllib

import pytest

from pipglr import customsection, layout, netboot, runnerconfig
from pipglr.errors import ConfigError, UsageError
from pipglr.guest import privileged, runnerstate
from pipglr.ops import privilege
from tests.unit.samples import GOOD_CONFIG

IMAGE = "registry.example.com:5000/team/build-env:1.2"


def custom_config(section: str | None = None, extra: str = "") -> str:
    """One custom runner with ``section`` (default: the one ``render`` prints)."""
    body = customsection.render() if section is None else section
    return (
        "concurrent = 1\n\n[[runners]]\n"
        '  name = "c"\n  url = "https://gitlab.example.com/"\n  token = "glrt-c"\n'
        f'  executor = "custom"\n{extra}{body}'
    )


def refused(text: str) -> str:
    """The one-line refusal of ``text``; fails when it is accepted."""
    with pytest.raises(ConfigError) as info:
        runnerconfig.check(runnerconfig.parse(text))
    message = str(info.value)
    assert "\n" not in message and "podman secret create config.toml" in message, message
    return message


def test_the_rendered_section_is_gitlab_runners_layout() -> None:
    """`pipglr executor toml` prints the table as gitlab-runner writes a runner's
    sub-table (two spaces before the header, four before keys), in CustomConfig's
    order, and it reads back as :func:`section`."""
    text = customsection.render(IMAGE)
    lines = text.splitlines()
    assert lines[0] == "  [runners.custom]"
    assert all(line.startswith("    ") and not line.startswith("     ") for line in lines[1:])
    assert [line.split(" = ")[0].strip() for line in lines[1:]] == [
        "config_exec", "config_args", "prepare_exec", "prepare_args", "run_exec", "run_args",
        "cleanup_exec", "cleanup_args", "graceful_kill_timeout", "force_kill_timeout",
    ]  # fmt: skip
    parsed = tomllib.loads(text)["runners"]["custom"]
    assert parsed == customsection.section(IMAGE)
    assert parsed["prepare_args"] == [
        "-m", layout.GUEST_MODULE, "executor", "prepare", "--default-image", IMAGE,
    ]  # fmt: skip
    for stage in ("config", "run", "cleanup"):
        assert parsed[f"{stage}_exec"] == str(layout.PYTHON)
        assert parsed[f"{stage}_args"] == ["-m", layout.GUEST_MODULE, "executor", stage]


def test_without_a_default_image_prepare_has_no_option() -> None:
    section = customsection.section()
    assert section["prepare_args"] == ["-m", layout.GUEST_MODULE, "executor", "prepare"]
    assert (section["graceful_kill_timeout"], section["force_kill_timeout"]) == (30, 10)


def test_register_flags_carry_the_same_section() -> None:
    """Every key becomes ``--custom-<key with dashes>=value``, lists one flag per
    element, in order (go-flags appends repeated []string options)."""
    flags = customsection.register_flags(IMAGE)
    assert all(flag.startswith("--custom-") and "=" in flag for flag in flags)
    rebuilt: dict[str, list[str]] = {}
    for flag in flags:
        name, _, value = flag.partition("=")
        rebuilt.setdefault(name.removeprefix("--custom-").replace("-", "_"), []).append(value)
    expected = customsection.section(IMAGE)
    assert list(rebuilt) == list(expected)
    for key, value in expected.items():
        assert rebuilt[key] == (value if isinstance(value, list) else [str(value)]), key


@pytest.mark.parametrize(
    "image",
    [
        "debian",
        "docker.io/library/debian:trixie-slim",
        "localhost:5000/a/b_c__d.e-f:1.0",
        "[::1]:5000/x",
        "quay.io/podman/stable@sha256:" + "a" * 64,
        "debian:12@sha256:" + "0" * 64,
    ],
)
def test_image_references_are_accepted(image: str) -> None:
    assert customsection.check_image(image) == image


@pytest.mark.parametrize(
    "image",
    ["", "Debian", "a b", "debian:", "debian:-x", "-rm", "a//b", "x@sha256:abc", "a" * 256],
)
def test_other_text_is_not_an_image(image: str) -> None:
    """Refused in one line naming the option and an example."""
    with pytest.raises(UsageError) as info:
        customsection.check_image(image)
    message = str(info.value)
    assert "\n" not in message and message.startswith("--default-image ")
    assert "docker.io/library/debian:trixie-slim" in message or "longer than" in message


def test_a_custom_runner_of_pipglrs_driver_passes() -> None:
    """The printed section, with or without a default image, timeouts changed, and a
    leftover [runners.docker] (ignored by the custom executor) pass."""
    assert runnerconfig.check(runnerconfig.parse(custom_config())) == ["c"]
    assert runnerconfig.check(runnerconfig.parse(custom_config(customsection.render(IMAGE))))
    changed = customsection.render().replace(
        "graceful_kill_timeout = 30", "graceful_kill_timeout = 5"
    )
    changed += "    prepare_exec_timeout = 600\n"
    assert runnerconfig.check(runnerconfig.parse(custom_config(changed))) == ["c"]
    mixed = GOOD_CONFIG + custom_config().split("\n\n", 1)[1]
    assert runnerconfig.check(runnerconfig.parse(mixed)) == ["one", "c"]


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (('run_exec = "/usr/bin/python3"', 'run_exec = "/bin/sh"'), "run_exec = '/bin/sh'"),
        (('"executor", "config"]', '"executor", "config", "--x"]'), "config_args"),
        (
            ('"-m", "pipglr.guest", "executor", "cleanup"', '"-m", "other", "executor", "cleanup"'),
            "cleanup_args",
        ),  # fmt: skip
        (
            ('"executor", "prepare"]', '"executor", "prepare", "--default-image", "Bad Image"]'),
            "'Bad Image' is not an image reference",
        ),  # fmt: skip
        (('"executor", "prepare"]', '"executor", "prepare", "--privileged"]'), "prepare_args"),
        (("force_kill_timeout = 10", 'force_kill_timeout = "10s"'), "whole number of seconds"),
        (("force_kill_timeout = 10", "force_kill_timeout = true"), "whole number of seconds"),
    ],
)
def test_other_custom_sections_are_refused(change: tuple[str, str], needle: str) -> None:
    """Any other program, argument or a timeout gitlab-runner cannot read: one line
    naming the key, why, and `pipglr executor toml` as the fix."""
    section = customsection.render()
    assert change[0] in section, change
    message = refused(custom_config(section.replace(*change)))
    assert needle in message and "`pipglr executor toml`" in message, message
    assert "runner c" in message and "only for its own driver" in message


def test_a_custom_runner_without_its_section_is_refused() -> None:
    message = refused(custom_config(""))
    assert "no [runners.custom] section" in message and "`pipglr executor toml`" in message


def test_the_executor_refusal_names_both_choices() -> None:
    message = refused(GOOD_CONFIG.replace('executor = "docker"', 'executor = "shell"'))
    assert 'executor = "custom"' in message and "`pipglr executor toml`" in message


def test_a_custom_runner_is_never_privileged() -> None:
    """A [runners.docker] privileged = true left in a custom runner's entry asks for
    nothing: the outer container stays unprivileged; a docker runner still counts."""
    leftover = "  [runners.docker]\n    privileged = true\n    services_privileged = true\n"
    text = custom_config(extra=leftover)
    assert runnerconfig.check(runnerconfig.parse(text)) == ["c"]
    assert privileged.privileged_runners(runnerconfig.parse(text)) == []
    assert not privilege.choose(text).privileged
    docker = GOOD_CONFIG.replace('image = "debian"', 'image = "debian"\n    privileged = true')
    assert [r.name for r in privileged.privileged_runners(runnerconfig.parse(docker))] == ["one"]
    assert privilege.choose(docker + custom_config().split("\n\n", 1)[1]).privileged


def test_working_copy_adds_no_docker_settings_to_a_custom_runner() -> None:
    """The network settings give a custom runner its proxy variables and the runner's
    tls-ca-file, but no [runners.docker] and no CA variables (they name a bundle only
    the docker volumes entry mounts); its [runners.custom] stays as it was."""
    jobs = netboot.job_settings(True, {"HTTP_PROXY": "http://proxy:3128"})
    assert any(e.startswith("SSL_CERT_FILE=") for e in jobs.environment), "CAs in the input"
    text = custom_config()
    runner = tomllib.loads(runnerstate.with_job_settings(text, jobs))["runners"][0]
    assert "docker" not in runner
    assert runner["environment"] == ["HTTP_PROXY=http://proxy:3128"]
    assert runner["tls-ca-file"] == str(layout.CA_BUNDLE)
    assert runner["custom"] == customsection.section()
    both = tomllib.loads(
        runnerstate.with_job_settings(GOOD_CONFIG + text.split("\n\n", 1)[1], jobs)
    )
    docker_runner = both["runners"][0]
    assert f"SSL_CERT_FILE={layout.JOB_CA_BUNDLE}" in docker_runner["environment"]
    assert docker_runner["docker"]["volumes"] == list(jobs.volumes)
