"""A runner's ``tls-ca-file`` in the stand-in (tests/standin/gitlab_runner/tlsca.py):
the job gets ``CI_SERVER_TLS_CA_FILE`` after the runner's environment, as a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.standin.gitlab_runner import configkeys, tlsca
from tests.standin.gitlab_runner.buildinfo import BuildInfo
from tests.standin.gitlab_runner.config import RunnerConfig
from tests.standin.gitlab_runner.jobspec import Job
from tests.unit.certmaker import make_cert
from tests.unit.test_standin_artifacts import TOKEN
from tests.unit.test_standin_executor import payload


def info(ca_file: str, environment: list[str]) -> BuildInfo:
    raw: dict[str, Any] = {"name": "r", "url": "http://gitlab.test/", "token": TOKEN,
                           "executor": "docker", "docker": {"image": "x"},
                           "environment": environment, "tls-ca-file": ca_file}  # fmt: skip
    configkeys.check(raw)  # the key is modelled: no system failure
    return BuildInfo(RunnerConfig.from_dict(raw), Job.from_dict(payload()), "s_0")


def test_the_ca_file_becomes_a_file_variable_after_the_runner_environment(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.crt"
    bundle.write_text(make_cert("tlsca test"))
    variables = info(str(bundle), [f"{tlsca.VARIABLE_CA_FILE}=/etc/x.crt"]).all_variables()
    found = [v for v in variables if v.key == tlsca.VARIABLE_CA_FILE]
    assert [v.file for v in found] == [False, True]  # the runner's own comes last: it wins
    assert found[-1].value == bundle.read_text()
    assert variables.value(tlsca.VARIABLE_CA_FILE) == bundle.read_text()


def test_a_file_without_a_certificate_is_as_if_unset(tmp_path: Path) -> None:
    empty = tmp_path / "empty.crt"
    empty.write_text("not a certificate\n")
    for path in (str(empty), str(tmp_path / "absent.crt"), ""):
        variables = info(path, []).all_variables()
        assert tlsca.VARIABLE_CA_FILE not in [v.key for v in variables], path
    assert tlsca.context(str(empty)).verify_mode.name == "CERT_REQUIRED"
