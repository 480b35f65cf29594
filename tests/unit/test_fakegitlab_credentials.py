"""The fake GitLab's registry ``credentials`` and ``DOCKER_AUTH_CONFIG`` as GitLab renders
them (lib/api/entities/ci/job_request/credentials.rb, lib/gitlab/ci/build/credentials/),
and the stand-in reading them back as gitlab-runner does."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakegitlab import payloads
from tests.standin.gitlab_runner.buildinfo import BuildInfo
from tests.standin.gitlab_runner.config import RunnerConfig
from tests.standin.gitlab_runner.jobspec import Job
from tests.standin.gitlab_runner.registryauth import SOURCE_PAYLOAD, SOURCE_VARIABLE, Resolver
from tests.unit.test_standin_registryauth import Lines

TOKEN = "glcbt-job-token"


def job_for(spec: dict[str, Any]) -> dict[str, Any]:
    """The payload the fake GitLab sends for ``spec``."""
    normalized = payloads.normalize_spec({"script": ["true"], **spec})
    return payloads.build_job(normalized, job_id=9, token=TOKEN, server_url="http://gl.test")


def test_a_job_without_credentials_gets_an_empty_list() -> None:
    """A GitLab without a registry sends ``credentials: []``."""
    assert job_for({})["credentials"] == []


def test_credentials_carry_all_four_keys_and_default_to_the_job_token() -> None:
    """Every exposed key is present; an entry without username/password is GitLab's own
    (gitlab-ci-token and the job token, Registry::GitlabRegistry)."""
    spec = {
        "credentials": [
            {"type": "registry", "url": "registry.gl.test:5050"},
            {"type": "registry", "url": "r.test", "username": "u", "password": "p"},
        ]
    }
    assert job_for(spec)["credentials"] == [
        {"type": "registry", "url": "registry.gl.test:5050", "username": "gitlab-ci-token",
         "password": TOKEN},
        {"type": "registry", "url": "r.test", "username": "u", "password": "p"},
    ]  # fmt: skip


@pytest.mark.parametrize(
    "credentials",
    [{"type": "registry"}, [{"url": "r.test"}], [{"type": "registry", "url": 5}],
     [{"type": "registry", "url": "r", "password": 1}],
     [{"type": "registry", "url": "r", "x": ""}]],
)  # fmt: skip
def test_bad_credentials_specs_are_refused(credentials: Any) -> None:
    """Entries GitLab could not send are a one-line spec error."""
    with pytest.raises(payloads.SpecError, match="credentials"):
        payloads.normalize_spec({"script": ["true"], "credentials": credentials})


def test_masked_docker_auth_config_is_an_ordinary_variable() -> None:
    """DOCKER_AUTH_CONFIG is an ordinary CI/CD variable: its flags are the spec's."""
    value = '{"auths":{"r.test":{"auth":"dTpw"}}}'
    job = job_for({"variables": {"DOCKER_AUTH_CONFIG": {"value": value, "masked": True}}})
    (variable,) = [v for v in job["variables"] if v["key"] == "DOCKER_AUTH_CONFIG"]
    assert variable == {"key": "DOCKER_AUTH_CONFIG", "value": value, "public": False,
                        "file": False, "masked": True, "raw": False}  # fmt: skip


def test_the_stand_in_reads_both_from_the_fake_payload() -> None:
    """Round trip: the payload's variable and credentials reach the resolver; the variable
    comes first for its registry, the payload's entry serves another one."""
    spec = {
        "variables": {"DOCKER_AUTH_CONFIG": {"value": '{"auths":{"r.test":{"auth":"dTpw"}}}',
                                             "masked": True}},
        "credentials": [{"type": "registry", "url": "registry.gl.test:5050"},
                        {"type": "registry", "url": "r.test"}],
    }  # fmt: skip
    runner = RunnerConfig.from_dict({"name": "r", "url": "http://gl.test/", "token": "glrt-x",
                                     "executor": "docker", "docker": {}})  # fmt: skip
    resolver = Resolver.for_build(BuildInfo(runner, Job.from_dict(job_for(spec)), "s_0"))
    resolver.home = lambda: ""  # not this machine's ~/.docker/config.json
    found = resolver.config_for_image("r.test/app:1", Lines())
    assert found is not None and (found.source, found.auth.username) == (SOURCE_VARIABLE, "u")
    own = resolver.config_for_image("registry.gl.test:5050/group/p:1", Lines())
    assert own is not None and own.source == SOURCE_PAYLOAD and own.auth.password == TOKEN
