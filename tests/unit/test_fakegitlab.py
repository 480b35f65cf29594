"""tests.fakegitlab: the fake coordinator speaks GitLab's runner protocol.

Each test runs the server in a thread on 127.0.0.1 and acts as gitlab-runner would
(network/gitlab.go, network/trace.go), so the engine tests can trust what it records.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakegitlab import __main__ as fakegitlab_main
from tests.fakegitlab import ctl, payloads
from tests.fakegitlab.server import Running, running
from tests.fakegitlab.state import State

TOKEN = "glrt-unit-runner"
REGISTRATION = "GR1348941-unit"
GRACEFUL = {"features": {"cancel_gracefully": True, "trace_checksum": True}}


@pytest.fixture
def gitlab() -> Iterator[Running]:
    """A fake GitLab with one authentication token and one registration token."""
    with running(State([TOKEN], [REGISTRATION], update_interval=1)) as server:
        yield server


def call(
    server: Running,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request as the runner sends it; returns status, headers, body."""
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    try:
        connection.request(method, path, body=data, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def take_job(server: Running, info: dict[str, Any] | None = None) -> dict[str, Any]:
    """``POST /jobs/request`` expecting a job."""
    body = {"token": TOKEN, "system_id": "s_unit", "info": info or {}}
    status, _, data = call(server, "POST", "/api/v4/jobs/request", body)
    assert status == 201, f"a queued job should be handed out with 201, got {status}"
    return dict(json.loads(data))


def patch(
    server: Running, job: dict[str, Any], start: int, data: bytes
) -> tuple[int, dict[str, str]]:
    """``PATCH /jobs/:id/trace`` with Content-Range as network/gitlab.go PatchTrace sets it."""
    headers = {"JOB-TOKEN": job["token"], "Content-Range": f"{start}-{start + len(data) - 1}"}
    status, response_headers, _ = call(
        server, "PATCH", f"/api/v4/jobs/{job['id']}/trace?debug_trace=false", data, headers
    )
    return status, response_headers


def update(server: Running, job: dict[str, Any], **fields: Any) -> tuple[int, dict[str, str]]:
    """``PUT /jobs/:id`` with the job token in body and header."""
    body = {"token": job["token"], "info": {}} | fields
    status, headers, _ = call(
        server, "PUT", f"/api/v4/jobs/{job['id']}", body, {"JOB-TOKEN": job["token"]}
    )
    return status, headers


def variables(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The payload's variables by key."""
    return {variable["key"]: variable for variable in job["variables"]}


# -- runners ----------------------------------------------------------------------------
def test_verify_accepts_known_token_and_refuses_others(gitlab: Running) -> None:
    """``/runners/verify`` answers 200 with a non-zero id for a known token, 403 otherwise."""
    status, _, data = call(gitlab, "POST", "/api/v4/runners/verify", {"token": TOKEN})
    assert status == 200, f"a known token should verify, got {status}"
    details = json.loads(data)
    assert details["id"] > 0 and details["token"] == TOKEN, f"register needs an id: {details}"
    status, _, _ = call(gitlab, "POST", "/api/v4/runners/verify", {"token": "glrt-nope"})
    assert status == 403, f"an unknown token should be forbidden, got {status}"


def test_legacy_registration_issues_a_new_authentication_token(gitlab: Running) -> None:
    """A registration token gets 201 and a fresh glrt- token that then verifies."""
    body = {"token": REGISTRATION, "description": "box", "tag_list": "podman, nested"}
    status, _, data = call(gitlab, "POST", "/api/v4/runners", body)
    assert status == 201, f"registration should answer 201, got {status}"
    issued = json.loads(data)
    assert issued["token"].startswith("glrt-"), f"expected a glrt- token: {issued}"
    status, _, _ = call(gitlab, "POST", "/api/v4/runners/verify", {"token": issued["token"]})
    assert status == 200, "the issued token should verify"
    runner = next(r for r in gitlab.state.runners.to_list() if r["token"] == issued["token"])
    assert runner["tags"] == ["podman", "nested"], f"tags should be kept: {runner}"
    assert runner["description"] == "box" and runner["source"] == "registration"
    status, _, _ = call(gitlab, "POST", "/api/v4/runners", {"token": "wrong"})
    assert status == 403, f"a bad registration token should be forbidden, got {status}"


def test_unregister_and_token_reset(gitlab: Running) -> None:
    """Token reset answers 201 with a new token; the old one stops working; DELETE → 204."""
    status, _, data = call(gitlab, "POST", "/api/v4/runners/reset_authentication_token",
                           {"token": TOKEN})  # fmt: skip
    assert status == 201, f"reset should answer 201 as gitlab.go resetToken expects, got {status}"
    new = json.loads(data)["token"]
    assert new != TOKEN and new.startswith("glrt-"), f"expected a new glrt- token, got {new}"
    assert call(gitlab, "POST", "/api/v4/runners/verify", {"token": TOKEN})[0] == 403
    assert call(gitlab, "DELETE", "/api/v4/runners", {"token": new})[0] == 204
    assert call(gitlab, "DELETE", "/api/v4/runners", {"token": new})[0] == 403


# -- requesting jobs --------------------------------------------------------------------
def test_request_without_a_job_is_204_with_last_update(gitlab: Running) -> None:
    """No job: 204 and an X-GitLab-Last-Update the runner sends back; 403 for strangers."""
    status, headers, data = call(gitlab, "POST", "/api/v4/jobs/request", {"token": TOKEN})
    assert status == 204 and data == b"", f"expected an empty 204, got {status} {data!r}"
    assert headers.get("X-GitLab-Last-Update"), f"204 should carry a queue version: {headers}"
    status, _, _ = call(gitlab, "POST", "/api/v4/jobs/request", {"token": "glrt-stranger"})
    assert status == 403, f"an unknown runner should be forbidden, got {status}"


def test_payload_has_what_the_runner_relies_on(gitlab: Running) -> None:
    """A queued spec comes back as a real-format job payload with concrete values."""
    spec = {
        "name": "build", "stage": "build", "project_id": 7, "image": "alpine:3.20",
        "services": [{"name": "postgres:16", "alias": "db"}, "redis:7"],
        "script": ["echo one", "echo two"], "after_script": ["echo after"],
        "variables": {"GREETING": "hi", "SECRET": {"value": "s3", "masked": True}},
        "cache": [{"key": "deps", "paths": ["vendor/"], "policy": "pull"}], "timeout": 600,
    }  # fmt: skip
    gitlab.state.add_job(spec)
    job = take_job(gitlab)
    found = variables(job)
    assert job["id"] == 1 and job["token"].startswith("glcbt-"), f"id/token: {job['id']}"
    assert found["CI_JOB_TOKEN"]["value"] == job["token"], "CI_JOB_TOKEN must be the job token"
    assert found["CI_JOB_TOKEN"]["masked"] and not found["CI_JOB_TOKEN"]["public"]
    assert found["CI_PROJECT_PATH"]["value"] == "group/project-7", "default project path"
    assert found["CI_SERVER_URL"]["value"] == gitlab.url, "server URL is the one the runner used"
    assert found["CI_JOB_ID"]["value"] == "1" and found["CI_JOB_STAGE"]["value"] == "build"
    assert found["GIT_STRATEGY"]["value"] == "none", "no git server: GIT_STRATEGY none"
    assert found["GREETING"]["value"] == "hi" and found["SECRET"]["masked"]
    assert job["steps"] == [
        {"name": "script", "script": ["echo one", "echo two"], "timeout": 600,
         "when": "on_success", "allow_failure": False},
        {"name": "after_script", "script": ["echo after"], "timeout": 600,
         "when": "always", "allow_failure": False},
    ], f"steps as GitLab sends them: {job['steps']}"  # fmt: skip
    assert job["image"]["name"] == "alpine:3.20", f"image: {job['image']}"
    assert [(s["name"], s.get("alias")) for s in job["services"]] == [
        ("postgres:16", "db"), ("redis:7", None)
    ], f"services: {job['services']}"  # fmt: skip
    cache = {"key": "deps", "untracked": False, "policy": "pull", "paths": ["vendor/"],
             "when": "on_success", "fallback_keys": []}  # fmt: skip
    assert job["cache"] == [cache], f"cache as spec.Cache reads it: {job['cache']}"
    assert job["runner_info"]["timeout"] == 600 and job["job_info"]["project_id"] == 7
    assert job["git_info"]["repo_url"].endswith("/group/project-7.git"), job["git_info"]
    assert f"gitlab-ci-token:{job['token']}@" in job["git_info"]["repo_url"]
    assert "script_failure" in job["features"]["failure_reasons"]
    assert gitlab.state.job(1)["state"] == "running", "a handed-out job is running"


def test_jobs_go_only_to_matching_runners(gitlab: Running) -> None:
    """A job pinned to another runner or needing tags is not handed to this one."""
    gitlab.state.add_job({"script": ["true"], "runner": "glrt-other"})
    gitlab.state.add_job({"script": ["true"], "tags": ["gpu"]})
    status, _, _ = call(gitlab, "POST", "/api/v4/jobs/request", {"token": TOKEN})
    assert status == 204, f"neither job fits this runner, expected 204, got {status}"
    body = {"token": REGISTRATION, "tag_list": "gpu"}
    tagged = json.loads(call(gitlab, "POST", "/api/v4/runners", body)[2])["token"]
    status, _, data = call(gitlab, "POST", "/api/v4/jobs/request", {"token": tagged})
    assert status == 201 and json.loads(data)["id"] == 2, "the gpu runner takes the gpu job"


def test_long_poll_answers_a_change_with_an_empty_204_then_rails_hands_out() -> None:
    """Workhorse (register.go): a request holding the current last_update is held; a
    job queued meanwhile ends the hold with a 204 that carries no X-GitLab-Last-Update,
    and the runner's next request with the same value gets the job (201) at once."""
    with running(State([TOKEN], long_poll=5)) as server:
        _, headers, _ = call(server, "POST", "/api/v4/jobs/request", {"token": TOKEN})
        body = {"token": TOKEN, "last_update": headers["X-GitLab-Last-Update"]}
        threading.Timer(0.3, server.state.add_job, [{"script": ["true"]}]).start()
        started = time.monotonic()
        status, held_headers, _ = call(server, "POST", "/api/v4/jobs/request", body)
        waited = time.monotonic() - started
        again, _, _ = call(server, "POST", "/api/v4/jobs/request", body)
    assert status == 204, f"a change seen while holding is answered 204, got {status}"
    assert 0.2 < waited < 4, f"the request should have been held until the job came: {waited}"
    assert "X-GitLab-Last-Update" not in held_headers, f"never reached Rails: {held_headers}"
    assert again == 201, f"the same last_update then reaches Rails and gets the job: {again}"


def test_long_poll_times_out_with_an_empty_204() -> None:
    """No change within the poll: 204 without a new last_update, after the poll time;
    a request without last_update (positive control) is answered at once."""
    with running(State([TOKEN], long_poll=0.5)) as server:
        started = time.monotonic()
        _, headers, _ = call(server, "POST", "/api/v4/jobs/request", {"token": TOKEN})
        first = time.monotonic() - started
        body = {"token": TOKEN, "last_update": headers["X-GitLab-Last-Update"]}
        started = time.monotonic()
        status, held_headers, _ = call(server, "POST", "/api/v4/jobs/request", body)
        waited = time.monotonic() - started
    assert first < 0.4, f"a request without last_update is not held: {first:.2f}s"
    assert status == 204 and 0.45 < waited < 3, f"held for the poll: {status} {waited:.2f}s"
    assert "X-GitLab-Last-Update" not in held_headers, held_headers


# -- two-phase job commit ---------------------------------------------------------------
TWO_PHASE = {"features": {"two_phase_job_commit": True, "cancel_gracefully": True}}


def test_two_phase_job_stays_pending_until_the_runner_accepts(gitlab: Running) -> None:
    """Advertising two_phase_job_commit: the job is assigned but pending (not handed out
    again, its trace accepted); the runner's ``running`` update starts it."""
    gitlab.state.add_job({"script": ["true"]})
    job = take_job(gitlab, TWO_PHASE)
    record = gitlab.state.job(job["id"])
    assert record["state"] == "pending" and record["waiting_for_ack"], record
    assert record["runner_token"] == TOKEN and record["stamps"]["started"] is None, record
    status, _, _ = call(gitlab, "POST", "/api/v4/jobs/request", {"token": TOKEN})
    assert status == 204, f"an assigned job is not handed out again, got {status}"
    status, headers = patch(gitlab, job, 0, b"preparing\n")
    assert status == 202 and headers["Job-Status"] == "pending", f"{status} {headers}"
    status, headers = update(gitlab, job, state="running")
    assert status == 200 and headers["Job-Status"] == "running", f"{status} {headers}"
    record = gitlab.state.job(job["id"])
    assert record["state"] == "running" and not record["waiting_for_ack"], record
    stamps = record["stamps"]
    assert stamps["started"] and stamps["accepted"], f"accept time recorded: {stamps}"
    assert stamps["started"]["mono"] >= stamps["picked"]["mono"], stamps


def test_legacy_hand_out_runs_the_job_at_once() -> None:
    """A runner without the feature, or GitLab without the feature flag
    (runner_ack=False), gets a job that is running from the hand-out on."""
    with running(State([TOKEN], runner_ack=False)) as server:
        server.state.add_job({"script": ["true"]})
        flagged_off = take_job(server, TWO_PHASE)
        record = server.state.job(flagged_off["id"])
    assert record["state"] == "running" and not record["waiting_for_ack"], record
    assert record["durations"]["pick_to_start"] < 0.05, f"started at hand-out: {record}"
    with running(State([TOKEN])) as server:
        server.state.add_job({"script": ["true"]})
        legacy = take_job(server, {"features": {"two_phase_job_commit": False}})
        assert server.state.job(legacy["id"])["state"] == "running", "no feature: running"


def test_keep_alive_extends_the_wait_and_a_final_state_is_refused() -> None:
    """While waiting, ``pending`` is a keep-alive (200) and ``failed`` is 400; the job
    stays pending past its first deadline and can still be accepted."""
    with running(State([TOKEN], ack_timeout=0.6)) as server:
        server.state.add_job({"script": ["true"]})
        job = take_job(server, TWO_PHASE)
        time.sleep(0.4)
        assert update(server, job, state="pending")[0] == 200, "keep-alive accepted"
        refused, headers = update(server, job, state="failed", failure_reason="script_failure")
        time.sleep(0.4)  # past the first deadline, within the extended one
        waiting = server.state.job(job["id"])
        accepted, _ = update(server, job, state="running")
        record = server.state.job(job["id"])
    assert refused == 400 and headers["Job-Status"] == "pending", f"{refused} {headers}"
    assert waiting["state"] == "pending" and waiting["waiting_for_ack"], waiting
    assert accepted == 200 and record["state"] == "running", record


def test_unaccepted_job_is_dropped_and_retried_twice() -> None:
    """Not accepted in time: failed with runner_provisioning_timeout and retried as a new
    pending job, at most twice; a late acceptance is refused (403, Job-Status failed)."""
    with running(State([TOKEN], ack_timeout=0.2, ack_recheck=0.1)) as server:
        server.state.add_job({"script": ["true"]})
        ids = []
        for _ in range(3):
            job = take_job(server, TWO_PHASE)
            ids.append(job["id"])
            time.sleep(0.3)
        late, headers = update(server, job, state="running")
        records = [server.state.job(job_id) for job_id in ids]
        status, _, _ = call(server, "POST", "/api/v4/jobs/request", {"token": TOKEN})
    assert [r["state"] for r in records] == ["failed"] * 3, records
    assert {r["failure_reason"] for r in records} == {"runner_provisioning_timeout"}, records
    assert [r["retry_of"] for r in records] == [None, ids[0], ids[1]], records
    assert [r["retried_by"] for r in records] == [ids[1], ids[2], None], "two retries only"
    assert late == 403 and headers["Job-Status"] == "failed", f"{late} {headers}"
    assert status == 204, f"no third retry is queued, got {status}"


def test_expired_wait_refuses_the_runner_until_the_worker_drops_the_job() -> None:
    """After a keep-alive the worker's next run is 30 s (here 5 s) later; once the wait
    has expired before it, the job is neither waiting nor running: 403, still pending."""
    with running(State([TOKEN], ack_timeout=0.3, ack_recheck=5)) as server:
        server.state.add_job({"script": ["true"]})
        job = take_job(server, TWO_PHASE)
        time.sleep(0.15)
        update(server, job, state="pending")
        time.sleep(0.25)  # the worker ran at 0.3 s and found the job waiting
        waiting = server.state.job(job["id"])["waiting_for_ack"]
        time.sleep(0.3)  # the keep-alive's wait ended at 0.45 s
        status, headers = update(server, job, state="running")
        record = server.state.job(job["id"])
    assert waiting, "the keep-alive kept the job waiting at the worker's first run"
    assert status == 403 and headers["Job-Status"] == "pending", f"{status} {headers}"
    assert record["state"] == "pending" and record["failure_reason"] is None, record


def test_canceling_a_waiting_job_refuses_its_acceptance(gitlab: Running) -> None:
    """A job canceled while waiting for the runner is canceled; the runner's acceptance
    then gets 403 with Job-Status canceled (it aborts)."""
    gitlab.state.add_job({"script": ["true"]})
    job = take_job(gitlab, TWO_PHASE)
    assert gitlab.state.cancel(job["id"])["state"] == "canceled"
    status, headers = update(gitlab, job, state="running")
    assert status == 403 and headers["Job-Status"] == "canceled", f"{status} {headers}"


# -- traces and updates -----------------------------------------------------------------
def test_trace_patches_append_with_range(gitlab: Running) -> None:
    """Patches at the current end are appended; 202 carries Range, Job-Status, interval."""
    gitlab.state.add_job({"script": ["true"]})
    job = take_job(gitlab)
    status, headers = patch(gitlab, job, 0, b"hello ")
    assert status == 202, f"first patch should be accepted, got {status}"
    assert headers["Range"] == "0-6" and headers["Job-Status"] == "running", headers
    assert headers["X-GitLab-Trace-Update-Interval"] == "1", headers
    status, headers = patch(gitlab, job, 6, b"world\n")
    assert status == 202 and headers["Range"] == "0-12", f"second patch: {status} {headers}"
    record = gitlab.state.job(job["id"])
    assert record["trace"] == "hello world\n", f"trace should be both patches: {record['trace']!r}"
    assert record["stamps"]["first_trace"] is not None, "first trace time is recorded"


def test_trace_patch_at_a_wrong_offset_is_416(gitlab: Running) -> None:
    """A patch not starting at the trace end gets 416 and the current size in Range."""
    gitlab.state.add_job({"script": ["true"]})
    job = take_job(gitlab)
    patch(gitlab, job, 0, b"abc")
    status, headers = patch(gitlab, job, 10, b"later")
    assert status == 416, f"a gap should be refused with 416, got {status}"
    assert headers["Range"] == "0-3", f"Range tells the runner where to resume: {headers}"
    assert gitlab.state.job(job["id"])["trace"] == "abc", "nothing appended on 416"
    headers = {"JOB-TOKEN": "glcbt-wrong", "Content-Range": "3-5"}
    status, _, _ = call(gitlab, "PATCH", f"/api/v4/jobs/{job['id']}/trace", b"xyz", headers)
    assert status == 403, f"a wrong job token should be forbidden, got {status}"


def test_final_update_success_is_recorded(gitlab: Running) -> None:
    """running touch → 200; success with the trace checksum → 200, state and stamps kept."""
    gitlab.state.add_job({"script": ["true"]})
    job = take_job(gitlab)
    assert update(gitlab, job, state="running")[0] == 200, "the acceptance touch is 200"
    patch(gitlab, job, 0, b"done\n")
    output = {"checksum": f"crc32:{zlib.crc32(b'done' + bytes([10])):08x}", "bytesize": 5}
    status, headers = update(gitlab, job, state="success", output=output)
    assert status == 200 and headers["Job-Status"] == "success", f"{status} {headers}"
    record = gitlab.state.job(job["id"])
    assert record["state"] == "success" and record["exit_code"] == 0, record
    assert record["checksum_ok"] is True, f"checksum should match: {record['checksum']}"
    assert [u["body"]["state"] for u in record["updates"]] == ["running", "success"]
    durations = record["durations"]
    assert durations["pick_to_final_update"] is not None and durations["total"] is not None
    assert update(gitlab, job, state="success")[0] == 403, "a finished job refuses updates"


def test_final_update_failed_keeps_exit_code_and_reason(gitlab: Running) -> None:
    """A failed update records exit_code and failure_reason."""
    gitlab.state.add_job({"script": ["exit 3"]})
    job = take_job(gitlab)
    status, _ = update(gitlab, job, state="failed", failure_reason="script_failure", exit_code=3)
    assert status == 200, f"final failed update should be 200, got {status}"
    record = gitlab.state.job(job["id"])
    assert (record["state"], record["exit_code"], record["failure_reason"]) == (
        "failed", 3, "script_failure"
    ), record  # fmt: skip


def test_accept_final_answers_202_before_200(gitlab: Running) -> None:
    """``accept_final: 1`` makes the first final PUT 202 (trace not yet complete)."""
    gitlab.state.add_job({"script": ["true"], "accept_final": 1})
    job = take_job(gitlab)
    status, headers = update(gitlab, job, state="success")
    assert status == 202 and headers["X-GitLab-Trace-Update-Interval"] == "1", headers
    assert gitlab.state.job(job["id"])["state"] == "running", "still running after 202"
    assert update(gitlab, job, state="success")[0] == 200, "the retry completes the job"


# -- cancel -----------------------------------------------------------------------------
def test_graceful_cancel_says_canceling_then_ends_canceled(gitlab: Running) -> None:
    """For a cancel_gracefully runner: Job-Status canceling, trace still kept, then canceled."""
    gitlab.state.add_job({"script": ["sleep 60"]})
    job = take_job(gitlab, GRACEFUL)
    patch(gitlab, job, 0, b"start\n")
    assert gitlab.state.cancel(job["id"])["state"] == "canceling"
    status, headers = patch(gitlab, job, 6, b"after_script ran\n")
    assert status == 202 and headers["Job-Status"] == "canceling", f"{status} {headers}"
    status, headers = update(gitlab, job, state="running")
    assert headers["Job-Status"] == "canceling", f"PUT should also say canceling: {headers}"
    status, headers = update(gitlab, job, state="failed", failure_reason="unknown_failure")
    assert status == 200 and headers["Job-Status"] == "canceled", f"{status} {headers}"
    record = gitlab.state.job(job["id"])
    assert record["state"] == "canceled" and record["reported_state"] == "failed", record
    assert record["trace"].endswith("after_script ran\n"), "trace sent while canceling is kept"


def test_hard_cancel_answers_403_with_job_status(gitlab: Running) -> None:
    """Without graceful cancel: 403 + Job-Status canceled; late bodies are still kept."""
    gitlab.state.add_job({"script": ["sleep 60"]})
    job = take_job(gitlab)
    assert gitlab.state.cancel(job["id"])["state"] == "canceled"
    status, headers = patch(gitlab, job, 0, b"late output\n")
    assert status == 403 and headers["Job-Status"] == "canceled", f"{status} {headers}"
    status, headers = update(gitlab, job, state="failed", failure_reason="job_canceled")
    assert status == 403 and headers["Job-Status"] == "canceled", f"{status} {headers}"
    record = gitlab.state.job(job["id"])
    assert record["rejected_trace"] == "late output\n", "late trace bytes are kept"
    assert record["updates"][-1]["body"]["failure_reason"] == "job_canceled"


def test_cancel_pending_job_takes_it_off_the_queue(gitlab: Running) -> None:
    """A canceled pending job is never handed out."""
    job_id = gitlab.state.add_job({"script": ["true"]}).id
    assert gitlab.state.cancel(job_id)["state"] == "canceled"
    status, _, _ = call(gitlab, "POST", "/api/v4/jobs/request", {"token": TOKEN})
    assert status == 204, f"a canceled job must not be handed out, got {status}"


# -- HTTP details -----------------------------------------------------------------------
def test_keep_alive_and_chunked_bodies(gitlab: Running) -> None:
    """One HTTP/1.1 connection serves several requests, including 204 and chunked bodies."""
    gitlab.state.add_job({"script": ["true"]})
    host, port = gitlab.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("POST", "/api/v4/jobs/request", json.dumps({"token": TOKEN}))
        job = json.loads(connection.getresponse().read())
        connection.request("POST", "/api/v4/jobs/request", json.dumps({"token": TOKEN}))
        empty = connection.getresponse()
        assert (empty.status, empty.read()) == (204, b""), "then no job: an empty 204"
        headers = {"JOB-TOKEN": job["token"], "Content-Range": "0-4"}
        connection.request("PATCH", f"/api/v4/jobs/{job['id']}/trace",
                           iter([b"chu", b"nk"]), headers, encode_chunked=True)  # fmt: skip
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    assert response.status == 202 and response.getheader("Range") == "0-5"
    assert gitlab.state.job(job["id"])["trace"] == "chunk", "chunked body should be decoded"


def test_request_log_keeps_runner_requests_only(gitlab: Running) -> None:
    """Runner requests are logged with headers, body and status; control calls are not."""
    ctl.Client(gitlab.url).jobs()
    call(gitlab, "POST", "/api/v4/jobs/request", {"token": TOKEN}, {"RUNNER-TOKEN": TOKEN})
    log = ctl.Client(gitlab.url).requests(path="/api/v4/")
    assert len(log) == 1, f"only the runner request should be logged: {log}"
    entry = log[0]
    assert entry["body"]["token"] == TOKEN and entry["status"] == 204, entry
    assert entry["headers"]["RUNNER-TOKEN"] == TOKEN, "headers are kept unredacted"
    assert ctl.Client(gitlab.url).requests(since=entry["seq"]) == []


# -- ctl --------------------------------------------------------------------------------
def test_ctl_wait_returns_the_final_record(
    gitlab: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    """``ctl add-job`` prints the id; ``ctl wait`` prints the record once the job is final."""
    assert ctl.main(["--url", gitlab.url, "add-job", '{"script": ["true"]}']) == 0
    job_id = json.loads(capsys.readouterr().out)["id"]

    def runner() -> None:
        job = take_job(gitlab)
        patch(gitlab, job, 0, b"ok\n")
        update(gitlab, job, state="success")

    threading.Timer(0.3, runner).start()
    assert ctl.main(["--url", gitlab.url, "wait", str(job_id), "--timeout", "10"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["state"] == "success" and record["trace"] == "ok\n", record


def test_ctl_errors_are_one_line(gitlab: Running, capsys: pytest.CaptureFixture[str]) -> None:
    """Timeouts, bad specs and unknown jobs exit 1 with one stderr line."""
    job_id = gitlab.state.add_job({"script": ["true"]}).id
    cases = [
        ["wait", str(job_id), "--timeout", "0.3"],
        ["add-job", '{"scrpt": []}'],
        ["job", "99"],
    ]
    for argv in cases:
        assert ctl.main(["--url", gitlab.url, *argv]) == 1, f"{argv} should fail"
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.count("\n") == 1, f"{argv}: {captured}"
    assert ctl.main(["--url", "http://127.0.0.1:9", "jobs"]) == 1, "no server: exit 1"
    assert capsys.readouterr().err.startswith("fakegitlab ctl: "), "one prefixed line"


def test_command_line_parses_serve_and_ctl() -> None:
    """``serve`` takes repeatable tokens; ``ctl wait`` takes several states."""
    parser = fakegitlab_main.build_parser()
    args = parser.parse_args(["serve", "--port", "8080", "--token", "glrt-a", "--token", "glrt-b",
                              "--registration-token", "GR1"])  # fmt: skip
    assert (args.token, args.registration_token, args.host) == (["glrt-a", "glrt-b"], ["GR1"],
                                                                 "127.0.0.1")  # fmt: skip
    args = parser.parse_args(["ctl", "wait", "3", "--state", "running", "canceling"])
    assert (args.action, args.id, args.state) == ("wait", 3, ["running", "canceling"])


# -- payloads (pure) --------------------------------------------------------------------
def test_spec_defaults() -> None:
    """A minimal spec gets GitLab-like defaults."""
    spec = payloads.normalize_spec({"script": ["true"]})
    assert spec["project_id"] == 1 and spec["project_path"] == "group/project-1"
    assert (spec["timeout"], spec["git_strategy"], spec["ref"]) == (3600, "none", "main")
    assert len(spec["sha"]) == 40 and spec["image"] is None, spec
    job = payloads.build_job(spec, job_id=5, token="glcbt-x", server_url="http://h:8080/")
    assert job["image"] is None and job["services"] == [] and job["cache"] == []
    assert [step["name"] for step in job["steps"]] == ["script"], "no after_script step"
    assert variables(job)["CI_SERVER_HOST"]["value"] == "h", "host from the server URL"
    assert variables(job)["CI_SERVER_PORT"]["value"] == "8080"


def test_spec_forms_and_repo_url() -> None:
    """File/masked variable forms, own values override predefined, repo_url keeps git on."""
    spec = payloads.normalize_spec({
        "script": ["true"], "repo_url": "http://git.local/g/p.git",
        "variables": {"CONF": {"value": "x=1", "file": True}, "CI_JOB_STAGE": "custom"},
    })  # fmt: skip
    job = payloads.build_job(spec, job_id=1, token="t", server_url="http://h")
    found = variables(job)
    assert found["CONF"]["file"] and not found["CONF"]["masked"], found["CONF"]
    assert found["CI_JOB_STAGE"]["value"] == "custom", "spec variables win"
    assert "GIT_STRATEGY" not in found, "with a repo_url the runner clones/fetches"
    assert job["git_info"]["repo_url"] == "http://git.local/g/p.git"


@pytest.mark.parametrize(
    "spec",
    [{}, {"script": "true"}, {"script": ["true"], "nope": 1},
     {"script": ["true"], "cache": [{"policy": "sometimes"}]},
     {"script": ["true"], "services": [{"image": "x"}]}, {"script": ["true"], "timeout": 0}],
)  # fmt: skip
def test_bad_specs_are_refused(spec: dict[str, Any]) -> None:
    """Specs GitLab could not have produced raise SpecError with one line."""
    with pytest.raises(payloads.SpecError) as error:
        payloads.normalize_spec(spec)
    assert "\n" not in str(error.value), "the message is one line"
