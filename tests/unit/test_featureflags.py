"""FF_NETWORK_PER_BUILD as a runner feature flag: no job variable turns it off.

gitlab-runner (common/build_settings.go ``populateFeatureFlags``) takes a runner's
``[runners.feature_flags]`` entry before any variable; a runner ``environment`` entry
is only a variable, which a job variable of the same name overrides. The register
label writes the flag, and the runner's working copy moves an older config's
environment entry (pipglr/guest/runnerstate.py). Checked against the gitlab-runner
stand-in, whose flag resolution replays upstream's.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from pipglr import layout
from pipglr.guest import register, runnerstate
from pipglr.settings import BuildSettings
from tests.standin.gitlab_runner import cli as standin_cli
from tests.standin.gitlab_runner import config as standin_config
from tests.standin.gitlab_runner import register as standin_register
from tests.standin.gitlab_runner.buildinfo import BuildInfo, parse_bool
from tests.standin.gitlab_runner.config import RunnerConfig
from tests.standin.gitlab_runner.errors import StandinError
from tests.standin.gitlab_runner.jobspec import Job
from tests.unit.test_standin_executor import payload

FLAG = "FF_NETWORK_PER_BUILD"
SECRET = f"""concurrent = 1

[[runners]]
  name = "one"
  url = "https://gitlab.example.com/"
  token = "glrt-abc"
  executor = "docker"
  environment = ["A=b", "{FLAG}=true"]
  [runners.docker]
    host = "{layout.DOCKER_HOST}"
"""


def per_build(runner: dict[str, Any], job_value: str | None) -> bool:
    """Whether the stand-in puts a job of ``runner`` on a per-build network, the job
    setting ``FF_NETWORK_PER_BUILD=job_value`` (None: not at all)."""
    variables = [{"key": "GIT_STRATEGY", "value": "none", "public": True}]
    if job_value is not None:
        variables.append({"key": FLAG, "value": job_value, "public": True})
    job = Job.from_dict(payload(variables=variables))
    return BuildInfo(RunnerConfig.from_dict(runner), job, "s_0123456789ab").flag(FLAG)


def registered_runner(tmp_path: Path) -> dict[str, Any]:
    """The ``[[runners]]`` entry the register label's command writes (the stand-in's
    register, which maps the flags onto config fields as common/config.go does)."""
    argv, _ = register.register_command(tmp_path, "glrt-x", BuildSettings().image_facts())
    args = standin_cli.parser().parse_args(argv[1:])
    return standin_register._runner_entry(args, 7, "glrt-x", None)


def test_register_writes_the_flag_as_a_runner_feature_flag(tmp_path: Path) -> None:
    runner = registered_runner(tmp_path)
    assert runner["feature_flags"] == {FLAG: True}, runner
    assert not any(e.startswith(f"{FLAG}=") for e in runner.get("environment", [])), runner


def test_a_job_variable_cannot_turn_off_the_registered_flag(tmp_path: Path) -> None:
    """A project variable FF_NETWORK_PER_BUILD=false leaves the job on its own network
    (fails on the register output before this change: it wrote an environment entry)."""
    runner = registered_runner(tmp_path)
    assert per_build(runner, "false") and per_build(runner, "0") and per_build(runner, None)


def test_an_environment_entry_is_what_a_job_variable_overrides() -> None:
    """The old behaviour, and why it had to go: with the flag only as a runner
    ``environment`` entry a job's FF_NETWORK_PER_BUILD=false turns it off. Control:
    without the job variable the entry turns it on."""
    runner = {"name": "r", "token": "glrt-x", "executor": "docker",
              "environment": [f"{FLAG}=true"], "docker": {"image": "x"}}  # fmt: skip
    assert per_build(runner, None)
    assert not per_build(runner, "false")
    runner["feature_flags"] = {FLAG: True}
    assert per_build(runner, "false"), "the runner's feature_flags win"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("TRUE", True), ("True", True), ("1", True), ("t", True),
     ("False", False), ("F", False), ("0", False),
     ("tRuE", None), ("yes", None), ("", None), (" true", None)],
)  # fmt: skip
def test_flag_values_parse_as_go_strconv_parse_bool(raw: str, expected: bool | None) -> None:
    """An unparsable job value leaves the flag as it was (``populateFeatureFlags``
    keeps the default on a parse error): a job's ``tRuE`` does not turn a default-off
    flag on (the stand-in lower-cased values before)."""
    assert parse_bool(raw) is expected
    runner = {"name": "r", "token": "glrt-x", "executor": "docker", "docker": {"image": "x"}}
    assert per_build(runner, raw) is (False if expected is None else expected)


def test_the_stand_in_register_refuses_a_malformed_feature_flag() -> None:
    """go-flags map syntax: NAME:VALUE with a Go bool."""
    with pytest.raises(StandinError, match="--feature-flags"):
        standin_register._feature_flags([f"{FLAG}=true"])
    assert standin_register._feature_flags([f"{FLAG}:True", "FF_X:0"]) == {
        FLAG: True, "FF_X": False
    }  # fmt: skip


def runner_of(text: str) -> dict[str, Any]:
    return standin_config.parse(text).runners[0].raw


def test_an_older_configs_environment_entry_moves_into_feature_flags() -> None:
    """The working copy of a config registered before: the entry is gone from
    ``environment`` (the others stay), the flag is in ``feature_flags``, and a job's
    FF_NETWORK_PER_BUILD=false no longer turns it off. Control: the secret as it is
    still lets the job turn it off."""
    assert not per_build(runner_of(SECRET), "false"), "control: the old config"
    moved = runnerstate.with_feature_flags(SECRET)
    runner = tomllib.loads(moved)["runners"][0]
    assert runner["environment"] == ["A=b"] and runner["feature_flags"] == {FLAG: True}, moved
    assert runner["docker"]["host"] == layout.DOCKER_HOST and runner["token"] == "glrt-abc"
    assert per_build(runner_of(moved), "false")


@pytest.mark.parametrize(
    "secret",
    [
        SECRET.replace(f'"{FLAG}=true"', f'"{FLAG}=false"'),
        SECRET.replace(f'"{FLAG}=true"', f'"{FLAG}=true", "{FLAG}=false"'),
        SECRET + f"  [runners.feature_flags]\n    {FLAG} = false\n",
        SECRET.replace(f', "{FLAG}=true"', ""),
    ],
    ids=["entry-off", "last-entry-off", "operators-flag", "no-entry"],
)
def test_what_the_operator_decided_is_left_alone(secret: str) -> None:
    """An entry that turns the flag off (the last one decides), or the operator's own
    feature_flags entry, or no entry at all: the text stays byte for byte."""
    assert runnerstate.with_feature_flags(secret) == secret


def test_a_lone_entry_leaves_no_empty_environment() -> None:
    secret = SECRET.replace('"A=b", ', "")
    runner = tomllib.loads(runnerstate.with_feature_flags(secret))["runners"][0]
    assert "environment" not in runner and runner["feature_flags"] == {FLAG: True}


def test_prepare_moves_it_in_the_working_copy_only(tmp_path: Path) -> None:
    """The runner runs on the moved flag; the secret (the operator's) is unchanged."""
    secret = tmp_path / "secret.toml"
    secret.write_text(SECRET)
    state = tmp_path / "config.toml"
    text, _ = runnerstate.prepare(secret, state)
    assert state.read_text() == text and tomllib.loads(text)["runners"][0]["feature_flags"]
    assert secret.read_text() == SECRET
    again, _ = runnerstate.prepare(secret, state)
    assert again == text, "a second start moves nothing twice"
