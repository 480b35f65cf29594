"""``[runners.docker]`` keys the stand-in validates as gitlab-runner v18.11.4 does
(common/allowed_images.go, helpers/pull_policies, executors/docker/services.go,
common/config.go getters, go-units, doublestar), and its guard against keys it does
not replay (configkeys.py). Every refusal runs next to its positive control."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.standin.gitlab_runner import build, dockerconfig
from tests.standin.gitlab_runner import tomltypes as t
from tests.standin.gitlab_runner.allowed import BadPattern, match
from tests.standin.gitlab_runner.config import RunnerConfig
from tests.standin.gitlab_runner.configkeys import unreplayed
from tests.unit.standin_fakedocker import FakeDocker, serving
from tests.unit.test_standin_executor import (
    BASE,
    HELPER,
    StubGitLab,
    creates,
    payload,
    runner_config,
)
from tests.unit.test_standin_executor import run_job as run_one

DB = "localhost/db:1"


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDocker]:
    """A fake engine with the job, helper and db images; Prepare retries at once."""
    monkeypatch.setattr(build, "PREPARATION_RETRY_INTERVAL", 0.01)
    ids = {BASE: "b", HELPER: "c", DB: "d"}
    engine = FakeDocker(images={name: "sha256:" + char * 64 for name, char in ids.items()})
    with serving(tmp_path / "docker.sock", engine):
        yield engine


def run(tmp_path: Path, job: dict[str, Any], **docker: Any) -> tuple[str, dict[str, Any]]:
    """Run a job on a runner with ``docker``; the trace and the final update."""
    log, gitlab = run_one(tmp_path, job, runner_config(tmp_path / "docker.sock", **docker))
    return log.text, final(gitlab)


def with_services(*services: dict[str, Any]) -> dict[str, Any]:
    """A job with ``services`` that answer the health check (HEALTHCHECK_TCP_PORT)."""
    variables = [
        {"key": "GIT_STRATEGY", "value": "none"},
        {"key": "HEALTHCHECK_TCP_PORT", "value": "5432", "public": True},
    ]
    return payload(services=list(services), variables=variables)


def final(gitlab: StubGitLab) -> dict[str, Any]:
    """The last job update's payload."""
    return dict([c for c in gitlab.calls if c[0] == "PUT"][-1][2])


def test_allowed_images_refuse_other_job_images(tmp_path: Path, fake: FakeDocker) -> None:
    """VerifyAllowedImage: the list and the docs link, "disallowed image", Prepare retried
    (a plain error), a system failure; the allowed image runs."""
    allowed = {"allowed_images": ["localhost/pipglr-*:*"]}
    fake.images["localhost/other:1"] = "sha256:" + "f" * 64
    ok, ok_final = run(tmp_path, payload(), **allowed)
    text, refused = run(tmp_path, payload(image={"name": "localhost/other:1"}), **allowed)
    assert ok_final["state"] == "success", ok[-500:]
    assert 'ERROR: The "localhost/other:1" image is not present on list of allowed images:' in text
    assert "- localhost/pipglr-*:*" in text and "allowed_images configuration" in text, text
    assert text.count("Preparation failed: disallowed image") == 3, "3 tries, like upstream"
    assert "Job failed (system failure): disallowed image" in text, text[-500:]
    assert refused["failure_reason"] == "runner_system_failure", refused


def test_allowed_services_and_configured_services(tmp_path: Path, fake: FakeDocker) -> None:
    """allowed_services limits the job's services; a service from config.toml always
    passes (an internal image); the job's own allowed service passes too."""
    docker = {"allowed_services": ["localhost/db:*"], "services": [{"name": DB}],
              "environment": ["FF_NETWORK_PER_BUILD=true"]}  # fmt: skip
    fake.images["localhost/cache:2"] = "sha256:" + "e" * 64
    ok, ok_final = run(tmp_path, with_services({"name": DB, "alias": "x"}), **docker)
    text, refused = run(tmp_path, with_services({"name": "localhost/cache:2"}), **docker)
    assert ok_final["state"] == "success", ok[-500:]
    assert 'The "localhost/cache:2" image is not present on list of allowed services:' in text
    assert refused["failure_reason"] == "runner_system_failure", text[-500:]


def test_services_limit_counts_configured_and_job_services(
    tmp_path: Path, fake: FakeDocker
) -> None:
    """services_limit = 1 with a configured service: the job alone runs, one more
    service is "too many services requested: 2, only 1 allowed"."""
    docker = {"services_limit": 1, "services": [{"name": DB}]}
    ok, ok_final = run(tmp_path, with_services(), **docker)
    text, refused = run(tmp_path, with_services({"name": DB, "alias": "x"}), **docker)
    assert ok_final["state"] == "success", ok[-500:]
    assert "Preparation failed: too many services requested: 2, only 1 allowed" in text, text
    assert refused["failure_reason"] == "runner_system_failure", refused


def test_allowed_pull_policies_limit_the_job_policy(tmp_path: Path, fake: FakeDocker) -> None:
    """ComputeEffectivePullPolicies: with allowed_pull_policies = ["if-not-present"] a
    job image asking for "always" is refused as a configuration error (no retry); the
    job's own if-not-present is allowed, the runner's list is narrowed to it."""
    docker = {
        "pull_policy": ["always", "if-not-present"],
        "allowed_pull_policies": ["if-not-present"],
    }
    ok_job = payload(image={"name": BASE, "pull_policy": ["if-not-present"]})
    ok, ok_final = run(tmp_path, ok_job, **docker)
    text, refused = run(
        tmp_path, payload(image={"name": BASE, "pull_policy": ["always"]}), **docker
    )
    assert ok_final["state"] == "success", ok[-500:]
    assert "Using effective pull policy of [if-not-present] for container sha256:" in ok, ok
    assert (
        f'invalid pull policy for image "{BASE}": pull_policy ([always]) defined in GitLab '
        "pipeline config is not one of the allowed_pull_policies ([if-not-present])"
    ) in text, text[-800:]
    assert "Preparation failed" not in text, "a BuildError is not retried"
    assert refused["failure_reason"] == "script_failure", "configuration_error, mapped"


def test_privileged_needs_an_allowed_image(tmp_path: Path, fake: FakeDocker) -> None:
    """privileged = true with allowed_privileged_images: only a matching image's
    container is privileged (isInPrivilegedImageList)."""
    docker = {"privileged": True, "allowed_privileged_images": ["localhost/pipglr-*:latest"]}
    run(tmp_path, payload(), **docker)
    refused = creates(fake, "build")[0].body["HostConfig"]["Privileged"]
    fake.calls.clear()
    run(tmp_path, payload(), privileged=True, allowed_privileged_images=["localhost/**"])
    allowed = creates(fake, "build")[0].body["HostConfig"]["Privileged"]
    assert (refused, allowed) == (False, True), "the tag (trixie) is part of the name"


def test_an_unreplayed_key_fails_the_job_naming_it(tmp_path: Path, fake: FakeDocker) -> None:
    """gpus = "all" is not replayed: the job fails at once as a system failure naming
    the key, before any container; the zero value ("") runs as if absent."""
    ok, ok_final = run(tmp_path, payload(), gpus="")
    fake.calls.clear()
    text, refused = run(tmp_path, payload(), gpus="all")
    assert ok_final["state"] == "success", ok[-500:]
    assert '"runners.docker.gpus"' in text and "does not replay" in text, text[-600:]
    assert refused["failure_reason"] == "runner_system_failure", refused
    assert not creates(fake, "build") and "Preparation failed" not in text, text[-600:]


def test_unreplayed_keys_are_named_at_every_level() -> None:
    """The guard looks at [[runners]], [runners.docker] and each configured service;
    modelled keys, zero values and other executors' sections pass."""
    raw = {
        "name": "r", "pre_build_script": "echo hi", "ssh": {"host": "x"},
        "cache": {"MaxUploadedArchiveSize": 0, "Type": ""},
        "docker": {"memory": "1g", "tls_verify": False, "volume_keep": True,
                   "services": [{"name": DB, "variables": ["A=b"]}]},
    }  # fmt: skip
    assert unreplayed(raw) == [
        "runners.pre_build_script",
        "runners.docker.volume_keep",
        "runners.docker.services.variables",
    ]


def test_log_options_other_than_env_and_labels_fail(tmp_path: Path, fake: FakeDocker) -> None:
    """GetLogConfig: only env and labels; anything else is a system failure at Prepare."""
    ok, ok_final = run(tmp_path, payload(), log_options={"env": "A"})
    text, refused = run(tmp_path, payload(), log_options={"max-size": "1m", "env": "A"})
    assert ok_final["state"] == "success", ok[-500:]
    assert (
        'creating docker log configuration: invalid log options: only ["env" "labels"] are '
        'allowed, but found: ["max-size"]'
    ) in text, text[-500:]
    assert refused["failure_reason"] == "runner_system_failure", refused


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        ("cpus", "1,5", "failed to parse 1,5 as a rational number"),
        ("ulimit", {"nofile": "x:1"}, 'invalid soft limit value: strconv.ParseInt: parsing "x"'),
        ("ulimit", {"nofile": "1:y"}, 'invalid soft limit value: strconv.ParseInt: parsing "y"'),
        ("isolation", "process", 'the isolation value "process" is not valid.'),
    ],
)
def test_host_config_errors_fail_the_job(
    tmp_path: Path, fake: FakeDocker, key: str, value: Any, error: str
) -> None:
    """createHostConfig's errors surface when the first stage's container is created."""
    text, refused = run(tmp_path, payload(), **{key: value})
    assert f"Job failed (system failure): {error}" in text, text[-600:]
    assert not creates(fake, "predefined"), "no container was created"


def test_a_memory_size_go_units_cannot_parse_is_fatal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """getMemoryBytes: logrus.Fatalf, the runner exits 1; a valid size is bytes."""
    exits: list[int] = []
    monkeypatch.setattr(dockerconfig, "exit_process", exits.append)
    docker = RunnerConfig.from_dict({"docker": {"memory": "1q", "memory_swap": "1g"}}).docker
    assert docker.memory_bytes(docker.memory_swap, "memory_swap") == 1 << 30
    with pytest.raises(ValueError, match="invalid suffix"):
        docker.memory_bytes(docker.memory, "memory")
    assert exits == [1], "the process exits"
    assert "FATAL: Error parsing docker memory: invalid suffix: 'q'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("size", "expected"),
    [("512", 512), ("128m", 128 << 20), ("1.5g", 3 << 29), ("64 MiB", 64 << 20),
     ("1kb", 1024), ("2B", 2), ("abc", "invalid size: 'abc'"), ("12x", "invalid suffix: 'x'"),
     ("1mbb", "invalid suffix: 'mbb'"), ("-1", "invalid size: '-1'")],
)  # fmt: skip
def test_ram_in_bytes(size: str, expected: int | str) -> None:
    """go-units v0.5.0 RAMInBytes: binary units, optional b/ib, case-insensitive."""
    if isinstance(expected, int):
        assert t.ram_in_bytes(size) == expected
    else:
        with pytest.raises(ValueError, match=expected):
            t.ram_in_bytes(size)


@pytest.mark.parametrize(
    ("cpus", "nano"), [("1.5", 1_500_000_000), ("3/2", 1_500_000_000), ("0.000000001", 1),
                       ("", 0), ("2", 2_000_000_000)],
)  # fmt: skip
def test_nano_cpus(cpus: str, nano: int) -> None:
    """computeNanoCPUs: big.Rat (decimal or fraction) times 1e9."""
    assert t.nano_cpus(cpus) == nano


@pytest.mark.parametrize(
    ("pattern", "name", "matched"),
    [("a/**", "a", True), ("a/**", "a/b/c", True), ("**/c", "a/b/c", True),
     ("**/c", "abcd", False), ("a/**/c", "a/c", True), ("*", "a/b", False),
     ("docker.io/*:*", "docker.io/alpine:3", True), ("{a,b}:1", "b:1", True),
     ("[!a]x", "bx", True), ("[!a]x", "ax", False), ("a?c", "a/c", False)],
)  # fmt: skip
def test_doublestar_match(pattern: str, name: str, matched: bool) -> None:
    """doublestar v4 Match semantics (cases from its match tests)."""
    assert match(pattern, name) is matched


def test_doublestar_bad_pattern() -> None:
    """An unclosed class or alternative is ErrBadPattern; a closed one matches."""
    assert match("[ab]", "a")
    for bad in ("[ab", "{a,b", "a\\"):
        with pytest.raises(BadPattern):
            match(bad, "a")
