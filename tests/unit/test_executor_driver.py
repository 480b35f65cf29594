"""The custom executor's driver (pipglr/guest/executor.py and its job* modules)
against a fake podman-py client (tests/unit/fakepodmanpy.py)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipglr import __version__
from pipglr.guest import executor, jobcontainer, jobexec, jobimages, jobservices
from pipglr.guest.jobcontainer import LABEL_JOB, Job, SystemFailure
from tests.unit import fakepodmanpy
from tests.unit.fakepodmanpy import FakeClient, frame

NAME = "runner-abcd1234-project-42-concurrent-0-777"
HELPER = "registry.gitlab.com/gitlab-org/gitlab-runner/gitlab-runner-helper:x86_64-v18.11.4"


def job_env(tmp_path: Path, **more: str) -> dict[str, str]:
    env = {
        "CUSTOM_ENV_CI_RUNNER_SHORT_TOKEN": "abcd1234",
        "CUSTOM_ENV_CI_PROJECT_ID": "42",
        "CUSTOM_ENV_CI_CONCURRENT_PROJECT_ID": "0",
        "CUSTOM_ENV_CI_JOB_ID": "777",
        "CUSTOM_ENV_CI_RUNNER_VERSION": "18.11.4",
        "BUILD_FAILURE_EXIT_CODE": "11",
        "SYSTEM_FAILURE_EXIT_CODE": "22",
        "BUILD_EXIT_CODE_FILE": str(tmp_path / "build_exit_code"),
        "JOB_RESPONSE_FILE": str(tmp_path / "response.json"),
        "HOME": str(tmp_path / "home"),
    }
    env.update(more)
    return env


@pytest.fixture(autouse=True)
def no_network_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipglr.guest import netconfig

    monkeypatch.setattr(netconfig, "read_job_settings", lambda: None)


def prepared(tmp_path: Path, **more: str) -> tuple[FakeClient, dict[str, str]]:
    client = FakeClient()
    client.add("image", "docker.io/library/alpine:3")
    client.add("image", HELPER)
    env = job_env(tmp_path, CUSTOM_ENV_CI_JOB_IMAGE="docker.io/library/alpine:3", **more)
    assert executor.main(["prepare"], env, client) == 0
    return client, env


# --- names and the config ---------------------------------------------------------


def test_names_follow_the_runner_variables(tmp_path: Path) -> None:
    job = jobcontainer.job_from_env(job_env(tmp_path))
    assert job.name == NAME
    assert job.helper == NAME + "-helper"
    assert job.builds_volume == NAME + "-builds"
    digest = hashlib.md5(b"/cache").hexdigest()
    assert job.cache_volume == f"runner-abcd1234-project-42-concurrent-0-cache-{digest}"


@pytest.mark.parametrize("value", ["", "a/b", "x y"])
def test_a_missing_or_odd_name_variable_is_one_line(tmp_path: Path, value: str) -> None:
    env = job_env(tmp_path, CUSTOM_ENV_CI_PROJECT_ID=value)
    with pytest.raises(SystemFailure, match="CUSTOM_ENV_CI_PROJECT_ID"):
        jobcontainer.job_from_env(env)


def test_protection_comes_from_the_payload_not_a_job_variable(tmp_path: Path) -> None:
    response = tmp_path / "response.json"
    variables = [
        {"key": "CI_COMMIT_REF_PROTECTED", "value": "false"},
        {"key": "CI_COMMIT_REF_PROTECTED", "value": "true"},  # the job's own
    ]
    response.write_text(json.dumps({"variables": variables}))
    env = job_env(tmp_path, CUSTOM_ENV_CI_COMMIT_REF_PROTECTED="true")
    assert not jobcontainer.job_from_env(env).protected
    response.write_text(json.dumps({"git_info": {"protected": True}, "variables": variables}))
    job = jobcontainer.job_from_env(env)
    assert job.protected and job.cache_volume.endswith("-protected")


def test_config_prints_the_contract_json(tmp_path: Path, capsys: Any) -> None:
    assert executor.main(["config"], job_env(tmp_path)) == 0
    assert json.loads(capsys.readouterr().out) == {
        "builds_dir": "/builds",
        "cache_dir": "/cache",
        "builds_dir_is_shared": False,
        "hostname": NAME,
        "driver": {"name": "pipglr", "version": __version__},
        "shell": "bash",
    }


# --- stage routing ---------------------------------------------------------------

#: gitlab-runner v18.11.4 common/build.go: the BuildStage constants and
#: getPredefinedEnv's true entries, written out from upstream.
UPSTREAM_STAGES = {
    "prepare_script": True, "get_sources": True, "clear_worktree": True,
    "restore_cache": True, "download_artifacts": True, "after_script": False,
    "archive_cache": True, "archive_cache_on_failure": True,
    "upload_artifacts_on_failure": True, "upload_artifacts_on_success": True,
    "cleanup_file_variables": True,
}  # fmt: skip


def test_stage_routing_matches_upstreams_predefined_stages(tmp_path: Path) -> None:
    job = jobcontainer.job_from_env(job_env(tmp_path))
    for stage, predefined in UPSTREAM_STAGES.items():
        assert executor.container_for(job, stage) == (job.helper if predefined else job.name)
    assert {s for s, p in UPSTREAM_STAGES.items() if p} == executor.HELPER_STAGES
    for stage in ("build_script", "step_script", "step_release", "something_new"):
        assert executor.container_for(job, stage) == job.name


# --- prepare -----------------------------------------------------------------------


def test_prepare_makes_the_network_volumes_and_unprivileged_containers(tmp_path: Path) -> None:
    client, _ = prepared(tmp_path)
    assert client.names("network") == {NAME}
    job = Job("abcd1234", "42", "0", "777")
    assert client.names("volume") == {job.builds_volume, job.cache_volume}
    assert client.names("container") == {NAME, job.helper}
    box, helper = client.store["container"][NAME], client.store["container"][job.helper]
    assert box.attrs["image"] == "docker.io/library/alpine:3"
    assert helper.attrs["image"] == HELPER
    assert box.attrs["networks"][NAME]["aliases"] == ["build", NAME]
    for made in (box, helper):
        spec = made.attrs
        assert spec["privileged"] is False
        assert not {"cap_add", "security_opt", "devices"} & set(spec)
        assert spec["labels"][LABEL_JOB] == NAME
        assert spec["labels"]["com.gitlab.gitlab-runner.job.id"] == "777"
        # On the job's network (bridge), each with options that are not empty: podman-py
        # drops empty values from the body, and an empty entry meant podman's default
        # network (seen on the engine: no service alias resolved).
        assert spec["network_mode"] == "bridge"
        assert list(spec["networks"]) == [NAME] and all(spec["networks"][NAME].values())
        assert spec["volumes"][job.builds_volume]["bind"] == "/builds"
        assert spec["volumes"][job.cache_volume]["bind"] == "/cache"
        assert spec["entrypoint"] + spec["command"] == jobcontainer.KEEPALIVE
        assert made.attrs["State"] == "running"


def test_prepare_takes_the_default_image_or_fails_in_one_line(tmp_path: Path, capsys: Any) -> None:
    client = FakeClient()
    client.add("image", HELPER)
    client.add("image", "debian:trixie")
    assert (
        executor.main(["prepare", "--default-image", "debian:trixie"], job_env(tmp_path), client)
        == 0
    )
    assert client.store["container"][NAME].attrs["image"] == "debian:trixie"
    capsys.readouterr()
    assert executor.main(["prepare"], job_env(tmp_path), FakeClient()) == 22
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no image" in err[0] and "--default-image" in err[0]


def test_prepare_removes_a_stale_job_of_the_same_name_only(tmp_path: Path) -> None:
    client = FakeClient()
    client.add("image", "docker.io/library/alpine:3")
    client.add("image", HELPER)
    client.add("container", NAME)  # left by a killed prepare: no labels
    client.add("network", NAME)
    client.add("container", "runner-abcd1234-project-42-concurrent-0-778")  # another job
    env = job_env(tmp_path, CUSTOM_ENV_CI_JOB_IMAGE="docker.io/library/alpine:3")
    assert executor.main(["prepare"], env, client) == 0
    removed = [c for c in client.calls if c[0] == "remove"]
    assert ("remove", "container", NAME) in removed and ("remove", "network", NAME) in removed
    assert "runner-abcd1234-project-42-concurrent-0-778" in client.names("container")
    assert client.calls.index(("remove", "network", NAME)) < client.calls.index(
        ("create", "network", NAME)
    )


def test_prepare_pulls_a_missing_image_with_the_job_registry_login(tmp_path: Path) -> None:
    client = FakeClient()
    client.add("image", HELPER)
    image = "registry.example:5050/group/app:1"
    env = job_env(
        tmp_path, CUSTOM_ENV_CI_JOB_IMAGE=image, CUSTOM_ENV_CI_REGISTRY="registry.example:5050",
        CUSTOM_ENV_CI_REGISTRY_USER="gitlab-ci-token", CUSTOM_ENV_CI_REGISTRY_PASSWORD="s3cret",
    )  # fmt: skip
    assert executor.main(["prepare"], env, client) == 0
    (ref, header), = client.pulls  # fmt: skip
    assert ref == image
    assert header is not None
    assert json.loads(base64.urlsafe_b64decode(header)) == {
        "username": "gitlab-ci-token", "password": "s3cret",
    }  # fmt: skip


def test_a_failed_pull_is_a_system_failure_line(tmp_path: Path, capsys: Any) -> None:
    client = FakeClient()
    client.pull_errors["docker.io/library/nope:1"] = "manifest unknown\nmore"
    env = job_env(tmp_path, CUSTOM_ENV_CI_JOB_IMAGE="docker.io/library/nope:1")
    assert executor.main(["prepare"], env, client) == 22
    assert capsys.readouterr().err.strip() == (
        "pipglr: pulling docker.io/library/nope:1 failed: manifest unknown"
    )


def test_credentials_follow_the_runners_order(tmp_path: Path) -> None:
    home = tmp_path / "config.json"
    home.write_text(json.dumps({"auths": {"https://index.docker.io/v1/": {
        "auth": base64.b64encode(b"home:pw").decode()}}}))  # fmt: skip
    job_config = json.dumps({"auths": {"docker.io": {"username": "job", "password": "jpw"}}})
    env = {"CUSTOM_ENV_DOCKER_AUTH_CONFIG": job_config}
    assert jobimages.credentials("alpine:3", env, home) == {"username": "job", "password": "jpw"}
    assert jobimages.credentials("alpine:3", {}, home) == {"username": "home", "password": "pw"}
    assert jobimages.credentials("quay.io/x/y", env, home) is None


def test_the_helper_image_is_loaded_from_the_archive_and_tagged(tmp_path: Path) -> None:
    client = FakeClient()
    archive = tmp_path / "prebuilt-alpine-x86_64.docker.tar.zst"
    archive.write_bytes(b"archive")
    env = {"CUSTOM_ENV_CI_RUNNER_VERSION": "18.11.4~beta.1"}
    name = jobimages.ensure_helper_image(client, env, None, print, archive)
    assert name == HELPER and client.images.exists(HELPER)
    assert ("load", "image", "7") in client.calls and not client.pulls
    # Present now: no second load.
    jobimages.ensure_helper_image(client, env, None, print, archive)
    assert [c for c in client.calls if c[0] == "load"] == [("load", "image", "7")]


def test_helper_image_names_follow_the_runner_version() -> None:
    assert jobimages.helper_image("18.11.4", "aarch64").endswith(":arm64-v18.11.4")
    assert jobimages.helper_image("0.0.0-pipglr-standin", "x86_64").endswith(":x86_64-v0.0.0")
    assert jobimages.helper_image("dev", "x86_64").endswith(":x86_64-latest")


# --- services ----------------------------------------------------------------------


def test_service_aliases_follow_the_docker_executor() -> None:
    aliases = jobservices.name_aliases("registry.example:5000/ns/img:tag")
    assert aliases == ["registry.example__ns__img", "registry.example-ns-img"]
    assert jobservices.name_aliases("postgres:16") == ["postgres"]
    assert jobservices.name_aliases("redis@sha256:" + "a" * 64) == ["redis"]


def test_services_start_on_the_job_network_with_their_aliases(tmp_path: Path) -> None:
    (tmp_path / "response.json").write_text(json.dumps({
        "variables": [{"key": "PUBLIC", "value": "1", "public": True},
                      {"key": "SECRET", "value": "x", "public": False}],
        "services": [{"name": "postgres:16", "variables": [{"key": "POSTGRES_DB", "value": "t"}]}],
    }))  # fmt: skip
    services = json.dumps([{"name": "postgres:16", "alias": "db", "entrypoint": None,
                            "command": ["postgres", "-c", "fsync=off"]}])  # fmt: skip
    client = FakeClient()
    for image in ("docker.io/library/alpine:3", HELPER, "postgres:16"):
        client.add("image", image)
    env = job_env(tmp_path, CUSTOM_ENV_CI_JOB_IMAGE="docker.io/library/alpine:3",
                  CUSTOM_ENV_CI_JOB_SERVICES=services)  # fmt: skip
    assert executor.main(["prepare"], env, client) == 0
    spec = client.store["container"][NAME + "-service-0"].attrs
    assert spec["networks"] == {NAME: {"aliases": ["postgres", "db"]}}
    assert spec["command"] == ["postgres", "-c", "fsync=off"] and "entrypoint" not in spec
    assert spec["environment"] == {"PUBLIC": "1", "POSTGRES_DB": "t"}
    assert spec["labels"][LABEL_JOB] == NAME and spec["privileged"] is False


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"name": "docker:27-dind"}, "privileged"),
        ({"name": "redis", "alias": "bad_alias!"}, "not a host name"),
        ({"name": ""}, "no image name"),
        ({"name": "redis", "command": "redis-server"}, "list of strings"),
    ],
)
def test_services_it_cannot_run_are_refused_before_anything_starts(
    tmp_path: Path, entry: dict[str, Any], says: str, capsys: Any
) -> None:
    client = FakeClient()
    env = job_env(tmp_path, CUSTOM_ENV_CI_JOB_IMAGE="alpine",
                  CUSTOM_ENV_CI_JOB_SERVICES=json.dumps([entry]))  # fmt: skip
    assert executor.main(["prepare"], env, client) == 22
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0]
    assert not client.names("container") and not client.names("network")


# --- run ---------------------------------------------------------------------------


def script(tmp_path: Path) -> Path:
    path = tmp_path / "script."
    path.write_text("#!/usr/bin/env bash\necho hi\n")
    return path


def test_a_passing_stage_exits_0_and_streams_both_outputs(tmp_path: Path, capfdbinary: Any) -> None:
    client, env = prepared(tmp_path)
    client.exec_results[NAME] = (
        [frame(1, b"out\n")[:5], frame(1, b"out\n")[5:] + frame(2, b"err\n")],
        0,
    )
    capfdbinary.readouterr()
    assert executor.main(["run", str(script(tmp_path)), "build_script"], env, client) == 0
    out = capfdbinary.readouterr()
    assert out.out == b"out\n" and out.err == b"err\n"
    assert not (tmp_path / "build_exit_code").exists()
    (box,) = [client.store["container"][NAME]]
    (path, data), = box.archives  # fmt: skip
    assert path == "/"
    run = client.api.execs["exec0"]
    assert run["argv"][:2] == ["/bin/sh", "-c"] and run["argv"][-1] == ""
    assert run["argv"][-2].startswith("/.pipglr/build_script-")


def test_a_failing_script_writes_its_code_and_exits_build_failure(tmp_path: Path) -> None:
    client, env = prepared(tmp_path)
    client.exec_results[NAME + "-helper"] = ([], 3)
    assert executor.main(["run", str(script(tmp_path)), "get_sources"], env, client) == 11
    assert (tmp_path / "build_exit_code").read_text() == "3\n"
    assert client.api.execs["exec0"]["argv"][-1] == "helper"


def test_an_api_failure_during_run_is_a_system_failure(tmp_path: Path, capsys: Any) -> None:
    client = FakeClient()  # no containers: the script cannot be copied in
    env = job_env(tmp_path)
    assert executor.main(["run", str(script(tmp_path)), "build_script"], env, client) == 22
    assert capsys.readouterr().err.startswith("pipglr: executor run: NotFound")
    assert not (tmp_path / "build_exit_code").exists()


def test_sigterm_during_run_stops_the_stage(tmp_path: Path) -> None:
    client, env = prepared(tmp_path)

    def output() -> Iterator[bytes]:
        yield frame(1, b"working\n")
        os.kill(os.getpid(), signal.SIGTERM)
        yield frame(1, b"never read\n")

    client.exec_results[NAME] = (output, 143)
    before = signal.getsignal(signal.SIGTERM)
    assert executor.main(["run", str(script(tmp_path)), "build_script"], env, client) == 11
    assert signal.getsignal(signal.SIGTERM) == before
    killer = client.api.execs["exec1"]
    assert killer["container"] == NAME and killer["argv"][2] == jobexec.KILLER
    assert (tmp_path / "build_exit_code").read_text() == "143\n"


def test_frames_are_split_whatever_the_chunks() -> None:
    data = frame(1, b"a" * 10) + frame(2, b"bc") + frame(1, b"")
    for size in (1, 3, 9, len(data)):
        frames = jobexec.Frames()
        got = [f for at in range(0, len(data), size) for f in frames.feed(data[at : at + size])]
        assert got == [(1, b"a" * 10), (2, b"bc"), (1, b"")]


def test_the_script_archive_is_readable_by_any_user() -> None:
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(jobexec.script_archive("s.sh", b"echo"))) as tar:
        entry = tar.getmember(".pipglr/s.sh")
        assert entry.mode == 0o644 and tar.extractfile(entry).read() == b"echo"  # type: ignore[union-attr]


# --- cleanup -----------------------------------------------------------------------


def test_cleanup_removes_only_this_jobs_objects_and_again_is_harmless(tmp_path: Path) -> None:
    client, env = prepared(tmp_path)
    other = "runner-abcd1234-project-42-concurrent-1-900"
    client.add("container", other, {LABEL_JOB: other})
    client.add("network", other, {LABEL_JOB: other})
    client.add("volume", other + "-builds", {LABEL_JOB: other})
    client.add("container", "some-service-of-mine", {LABEL_JOB: NAME})
    job = jobcontainer.job_from_env(env)
    assert executor.main(["cleanup"], env, client) == 0
    assert client.names("container") == {other}
    assert client.names("network") == {other}
    assert client.names("volume") == {other + "-builds", job.cache_volume}
    # The running job and helper containers were killed (SIGKILL) before removal: a
    # forced remove would wait out the image's STOPSIGNAL, which the keepalive ignores.
    for name in (NAME, job.helper):
        assert client.calls.index(("kill", "container", name)) < client.calls.index(
            ("remove", "container", name)
        ), client.calls
    assert executor.main(["cleanup"], env, client) == 0


def test_cleanup_after_a_killed_prepare_finds_unlabelled_objects(tmp_path: Path) -> None:
    client = FakeClient()
    client.add("network", NAME)
    client.add("volume", NAME + "-builds")
    assert executor.main(["cleanup"], job_env(tmp_path), client) == 0
    assert not client.names("network") and not client.names("volume")


def test_stage_output_is_passed_on_as_it_arrives() -> None:
    """The attached exec's body is read chunk by chunk (``read1``), not to its end:
    the first chunk is out after one read, while the stage still runs."""
    raw = fakepodmanpy.Raw([b"first", b"second"])
    chunks = jobexec._as_it_comes(raw)
    assert next(chunks) == b"first" and raw.reads == 1
    assert list(chunks) == [b"second"] and raw.reads == 3


# --- maintained job images ------------------------------------------------------------


def test_a_bare_name_of_a_maintained_image_runs_on_it_without_a_pull(tmp_path: Path) -> None:
    """``image: tools`` (or ``--default-image tools``) with ``localhost/tools`` labelled
    maintained "tools": the job runs on it, nothing is pulled."""
    from pipglr import layout

    for argv, more in (
        (["prepare"], {"CUSTOM_ENV_CI_JOB_IMAGE": "tools"}),
        (["prepare", "--default-image", "tools"], {}),
    ):
        client = FakeClient()
        client.add("image", HELPER)
        client.add("image", "localhost/tools:latest", {layout.MAINTAINED_LABEL: "tools"})
        assert executor.main(argv, job_env(tmp_path, **more), client) == 0
        assert client.store["container"][NAME].attrs["image"] == "localhost/tools:latest"
        assert client.pulls == []


@pytest.mark.parametrize(
    ("image", "labels"),
    [
        ("tools", {}),  # a localhost/tools that is no maintained image
        ("tools", {"io.pipglr.maintained": "other"}),
        ("docker.io/library/tools", {"io.pipglr.maintained": "tools"}),
        ("tools:1", {"io.pipglr.maintained": "tools"}),
    ],
)
def test_anything_else_is_pulled_as_named(
    tmp_path: Path, image: str, labels: dict[str, str]
) -> None:
    client = FakeClient()
    client.add("image", HELPER)
    client.add("image", "localhost/tools:latest", labels)
    assert jobimages.maintained_image(client, image) is None
    env = job_env(tmp_path, CUSTOM_ENV_CI_JOB_IMAGE=image)
    assert executor.main(["prepare"], env, client) == 0
    assert client.store["container"][NAME].attrs["image"] == image
    assert [ref for ref, _ in client.pulls] == [image]
