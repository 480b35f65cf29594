"""tests.fakegitlab: ``artifacts:``/``dependencies:`` in the job payload and the
artifacts endpoints, as GitLab (lib/api/ci/runner.rb, build_runner_presenter.rb,
entities/ci/job_request/{artifacts,dependency}.rb, job_artifacts/create_service.rb)
answers gitlab-runner's network/gitlab.go ``UploadRawArtifacts``/``DownloadArtifacts``.

Each test serves the fake on 127.0.0.1 in a thread and calls it as the helper would.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakegitlab import ctl, payloads
from tests.fakegitlab.server import Running, running
from tests.fakegitlab.state import State
from tests.unit.test_fakegitlab import TOKEN, call, take_job, update

BOUNDARY = "unitboundary0123456789"


@pytest.fixture
def server() -> Iterator[Running]:
    """A fake GitLab with one runner token."""
    with running(State([TOKEN], update_interval=1)) as found:
        yield found


def zip_of(files: dict[str, str]) -> bytes:
    """A zip holding ``files`` (name → text)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def multipart(data: bytes | None, filename: str = "artifacts.zip") -> tuple[bytes, str]:
    """A body as createArtifactsContentProvider writes it (``file`` part) and its type."""
    parts = b""
    if data is not None:
        parts = (
            (
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
                f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode()
            + data
            + b"\r\n"
        )
    return parts + f"--{BOUNDARY}--\r\n".encode(), f"multipart/form-data; boundary={BOUNDARY}"


def upload(
    server: Running, job_id: int, token: str, data: bytes | None, query: str = ""
) -> tuple[int, dict[str, str], Any]:
    """``POST /jobs/:id/artifacts`` with JOB-TOKEN; the body decoded when JSON."""
    body, content_type = multipart(data)
    headers = {"JOB-TOKEN": token, "Content-Type": content_type}
    status, found, answer = call(
        server, "POST", f"/api/v4/jobs/{job_id}/artifacts?{query}", body, headers
    )
    is_json = found.get("Content-Type", "").startswith("application/json")
    return status, found, json.loads(answer) if is_json else answer


def download(server: Running, job_id: int, token: str) -> tuple[int, dict[str, str], bytes]:
    """``GET /jobs/:id/artifacts?direct_download=true`` with JOB-TOKEN."""
    path = f"/api/v4/jobs/{job_id}/artifacts?direct_download=true"
    return call(server, "GET", path, None, {"JOB-TOKEN": token})


def queue(server: Running, **spec: Any) -> int:
    """Add a job; its id."""
    return server.state.add_job({"script": ["true"], "pipeline_id": 50} | spec).id


def test_payload_renders_artifacts_like_build_runner_presenter(server: Running) -> None:
    """One archive/zip entry; unset keys null, untracked and exclude left out when
    unset; a spec without artifacts gets an empty list."""
    queue(server, name="a", artifacts={"paths": ["out/"], "when": "always"})
    queue(server, name="plain")
    first, second = take_job(server), take_job(server)
    assert first["artifacts"] == [
        {
            "name": None, "paths": ["out/"], "when": "always", "expire_in": None,
            "artifact_type": "archive", "artifact_format": "zip",
        }
    ], first["artifacts"]  # fmt: skip
    assert second["artifacts"] == [], "no artifacts: keyword absent, list empty"


def test_exclude_and_untracked_are_exposed_when_given(server: Running) -> None:
    """``untracked`` (even false) and a non-empty ``exclude`` appear in the entry."""
    artifacts = {"untracked": False, "paths": ["a"], "exclude": ["a/*.log"], "name": "n"}
    queue(server, artifacts=artifacts | {"expire_in": "1 week"})
    entry = take_job(server)["artifacts"][0]
    assert (entry["untracked"], entry["exclude"]) == (False, ["a/*.log"]), entry
    assert (entry["name"], entry["expire_in"]) == ("n", "1 week"), entry


def test_dependent_job_waits_until_its_dependency_is_final(server: Running) -> None:
    """GitLab creates a later stage's job once the earlier stage is done: B is not handed
    out while A runs; A's final update puts it in the queue."""
    queue(server, name="a")
    queue(server, name="b", dependencies=["a"])
    a = take_job(server)
    status, _, _ = call(server, "POST", "/api/v4/jobs/request", {"token": TOKEN})
    assert status == 204, f"b must wait for a (positive control below), got {status}"
    update(server, a, state="success", exit_code=0)
    assert take_job(server)["job_info"]["name"] == "b", "b goes out once a is final"


def test_dependencies_carry_the_running_jobs_token_and_the_archive(server: Running) -> None:
    """``dependencies`` entry: id, name, the *downloading* job's token, and
    artifacts_file {filename, size} of the uploaded archive; none for a job without one."""
    queue(server, name="a", artifacts={"paths": ["x"]})
    queue(server, name="empty")
    queue(server, name="b", dependencies=["a", "empty"])
    a, empty = take_job(server), take_job(server)
    data = zip_of({"x/file.txt": "hello"})
    assert upload(server, a["id"], a["token"], data)[0] == 201
    for job in (a, empty):
        update(server, job, state="success", exit_code=0)
    b = take_job(server)
    assert b["dependencies"] == [
        {"id": a["id"], "name": "a", "token": b["token"],
         "artifacts_file": {"filename": "artifacts.zip", "size": len(data)}},
        {"id": empty["id"], "name": "empty", "token": b["token"]},
    ], b["dependencies"]  # fmt: skip


def test_a_retried_dependency_replaces_the_first(server: Running) -> None:
    """``processables.latest``: when ``a`` is retried (a newer job of the same name,
    as the provisioning-timeout retry creates), b waits for and names the retry."""
    queue(server, name="a")
    queue(server, name="b", dependencies=["a"])
    first = take_job(server)
    update(server, first, state="failed", exit_code=1)
    retry_id = queue(server, name="a")
    retry = take_job(server)
    assert retry["id"] == retry_id, f"b (queued first) waits for the retry: {retry['id']}"
    update(server, retry, state="success", exit_code=0)
    names = [(d["id"], d["name"]) for d in take_job(server)["dependencies"]]
    assert names == [(retry_id, "a")], f"b depends on the retry: {names}"


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "b", "dependencies": ["nope"]},
        {"name": "b", "dependencies": ["a"], "pipeline_id": 51},
        {"name": "b", "dependencies": ["a"], "project_id": 2},
        {"name": "b", "dependencies": ["a"], "pipeline_id": None},
        {"name": "b", "artifacts": {"paths": "x"}},
        {"name": "b", "artifacts": {"when": "sometimes"}},
        {"name": "b", "artifacts": {"reports": {}}},
    ],
)
def test_bad_artifacts_and_dependencies_are_refused(server: Running, spec: dict[str, Any]) -> None:
    """Undefined dependencies (other name, pipeline or project, no pipeline) and bad
    artifacts keys are SpecErrors; the same job with a valid spec is accepted."""
    queue(server, name="a")
    with pytest.raises(payloads.SpecError):
        queue(server, **spec)
    assert queue(server, name="b", dependencies=["a"]) > 0, "positive control"


def test_upload_needs_the_jobs_own_token_while_it_runs(server: Running) -> None:
    """authenticate_job!: another job's token is 403; after the final update 403 with
    Job-Status; the running job's own token is 201 with body 201."""
    queue(server, name="a")
    queue(server, name="other")
    a, other = take_job(server), take_job(server)
    data = zip_of({"f": "1"})
    assert upload(server, a["id"], other["token"], data)[0] == 403, "someone else's token"
    status, _, body = upload(server, a["id"], a["token"], data)
    assert (status, body) == (201, b"201"), f"own token while running: {status} {body!r}"
    update(server, a, state="success", exit_code=0)
    status, headers, body = upload(server, a["id"], a["token"], data)
    assert status == 403 and headers.get("Job-Status") == "success", (status, headers)
    assert "not processing on runner" in body["message"], body


def test_upload_parameters_are_validated(server: Running) -> None:
    """No ``file`` part, an unknown artifact_type, a type/format mismatch → 400; the
    same file with valid parameters → 201."""
    queue(server, name="a")
    a = take_job(server)
    data = zip_of({"f": "1"})
    status, _, body = upload(server, a["id"], a["token"], None)
    assert (status, body) == (400, {"error": "file is missing"}), (status, body)
    status, _, body = upload(server, a["id"], a["token"], data, "artifact_type=bogus")
    assert status == 400 and "artifact_type" in body["error"], (status, body)
    status, _, body = upload(server, a["id"], a["token"], data, "artifact_format=gzip")
    assert status == 400 and "Invalid file format" in body["message"], (status, body)
    query = "artifact_format=zip&artifact_type=archive&expire_in=1+day"
    assert upload(server, a["id"], a["token"], data, query)[0] == 201


def test_upload_over_the_size_limit_is_413(server: Running) -> None:
    """max_artifacts_size: one byte over → 413; exactly the limit → 201."""
    queue(server, name="a")
    a = take_job(server)
    data = zip_of({"f": "x" * 100})
    server.state.artifact_store.max_size = len(data) - 1
    assert upload(server, a["id"], a["token"], data)[0] == 413, "over the limit"
    server.state.artifact_store.max_size = len(data)
    assert upload(server, a["id"], a["token"], data)[0] == 201, "at the limit"


def test_second_upload_of_a_type_is_201_only_when_identical(server: Running) -> None:
    """CreateService: same SHA-256 → 201 again; different content → 400, first kept."""
    queue(server, name="a")
    a = take_job(server)
    first, second = zip_of({"f": "1"}), zip_of({"f": "2"})
    assert upload(server, a["id"], a["token"], first)[0] == 201
    assert upload(server, a["id"], a["token"], first)[0] == 201, "identical again"
    status, _, body = upload(server, a["id"], a["token"], second)
    assert status == 400 and "already exists" in body["message"], (status, body)
    assert server.state.artifact_store.archive(a["id"]).data == first, "the first one stays"


def test_download_uses_the_downloading_jobs_token(server: Running) -> None:
    """authenticate_job_via_dependent_job!: B's running token gets A's archive (200,
    octet-stream, attachment); A's own token after A finished is 401."""
    queue(server, name="a")
    queue(server, name="b", dependencies=["a"])
    a = take_job(server)
    data = zip_of({"out/a.txt": "from a"})
    upload(server, a["id"], a["token"], data)
    update(server, a, state="success", exit_code=0)
    b = take_job(server)
    status, headers, body = download(server, a["id"], b["token"])
    assert (status, body) == (200, data), f"b's token should fetch a's archive: {status}"
    assert headers["Content-Type"] == "application/octet-stream", headers
    assert 'filename="artifacts.zip"' in headers["Content-Disposition"], headers
    assert download(server, a["id"], a["token"])[0] == 401, "a finished: its token is dead"


def test_download_refusals(server: Running) -> None:
    """Unknown token 401; a running job of another project 403; a job without archive
    404; the same request with a running token of the project → 200 (control)."""
    queue(server, name="a")
    queue(server, name="c", pipeline_id=50)
    queue(server, name="x", project_id=9, pipeline_id=90)
    a, c, x = take_job(server), take_job(server), take_job(server)
    assert download(server, a["id"], c["token"])[0] == 404, "no archive yet"
    upload(server, a["id"], a["token"], zip_of({"f": "1"}))
    assert download(server, a["id"], "glcbt-unknown")[0] == 401, "unknown token"
    assert download(server, a["id"], x["token"])[0] == 403, "another project's job"
    assert download(server, 999, c["token"])[0] == 403, "no such job"
    assert download(server, a["id"], c["token"])[0] == 200, "GitLab checks read_build, not deps"


def test_control_api_lists_the_archive(server: Running) -> None:
    """``ctl.Client.artifacts``: type, format, filename, size and the zip members with
    small files' text; an unknown job is a CtlError."""
    queue(server, name="a")
    a = take_job(server)
    data = zip_of({"out/": "", "out/a.txt": "hello"})
    upload(server, a["id"], a["token"], data, "expire_in=2+days")
    client = ctl.Client(server.url)
    stored = client.artifacts(a["id"])
    assert [(s["artifact_type"], s["filename"], s["size"]) for s in stored] == [
        ("archive", "artifacts.zip", len(data))
    ], stored
    assert stored[0]["expire_in"] == "2 days", stored[0]
    members = {entry["name"]: entry for entry in stored[0]["entries"]}
    assert members["out/"]["type"] == "dir" and members["out/a.txt"]["text"] == "hello", members
    with pytest.raises(ctl.CtlError):
        client.artifacts(999)
