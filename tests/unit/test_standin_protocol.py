"""The stand-in's runner and the fake GitLab together: ``last_update`` and long polling,
the cancelled job request at stop, and the two-phase job commit (both in one process:
the fake GitLab on 127.0.0.1, the fake Docker API on a temporary unix socket)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakegitlab.server import Running, running
from tests.fakegitlab.state import State
from tests.standin.gitlab_runner import config
from tests.standin.gitlab_runner.config import RunnerConfig
from tests.standin.gitlab_runner.multi import RunCommand
from tests.standin.gitlab_runner.network import Canceller, GitLabClient
from tests.unit.standin_fakedocker import FakeDocker, serving
from tests.unit.test_standin_executor import BASE, HELPER

TOKEN = "glrt-protocol-unit"


def requests(server: Running) -> list[dict[str, Any]]:
    """The job requests the fake GitLab received, in order."""
    return server.state.request_log.since(0, "/api/v4/jobs/request")


def ask(client: GitLabClient, server: Running) -> dict[str, Any] | None:
    """One ``RequestJob`` as the run loop sends it."""
    job, _ = client.request_job(server.url, TOKEN, "s_0123456789ab", "docker")
    return job


def test_job_requests_send_back_the_last_update_they_were_given() -> None:
    """The first request has no last_update; every later one carries the newest
    X-GitLab-Last-Update answered (kept across a 201, which carries none), and a queued
    job is handed out although the value the runner sends is current no more."""
    with running(State([TOKEN])) as server:
        client = GitLabClient()
        assert ask(client, server) is None and ask(client, server) is None
        server.state.add_job({"script": ["true"]})
        job = ask(client, server)
        assert ask(client, server) is None
        sent = [(r["body"].get("last_update"), r["response_headers"]) for r in requests(server)]
    assert sent[0][0] is None, f"nothing to send back on the first request: {sent[0]}"
    first_value = sent[0][1]["X-GitLab-Last-Update"]
    assert sent[1][0] == first_value, f"the value GitLab answered is sent back: {sent}"
    assert job is not None and sent[2][0] == first_value, f"stale value, job handed out: {sent}"
    assert sent[3][0] == first_value, f"a 201 carries no value; the old one is kept: {sent}"
    assert sent[3][1]["X-GitLab-Last-Update"] != first_value, "the queue moved on"


def test_a_long_polled_request_returns_when_a_job_is_queued() -> None:
    """Long polling on: the runner's request with the current value is held; a job queued
    meanwhile ends it (204 without a value), and the next request gets the job."""
    with running(State([TOKEN], long_poll=10)) as server:
        client = GitLabClient()
        ask(client, server)  # learns the current value
        threading.Timer(0.5, server.state.add_job, [{"script": ["true"]}]).start()
        started = time.monotonic()
        held = ask(client, server)
        waited = time.monotonic() - started
        job = ask(client, server)
    assert held is None and 0.4 < waited < 5, f"held until the job came: {waited:.2f}s"
    assert job is not None and job["id"] == 1, "the next request takes the job"


def test_cancel_ends_a_held_job_request_and_refuses_later_ones() -> None:
    """doJobRequest's context: cancelling aborts the request held by the long poll (a
    client error, unhealthy) and every later request without contacting GitLab."""
    with running(State([TOKEN], long_poll=30)) as server:
        client, cancel = GitLabClient(), Canceller()
        ask(client, server)
        result: list[tuple[dict[str, Any] | None, bool]] = []
        thread = threading.Thread(target=lambda: result.append(client.request_job(
            server.url, TOKEN, "s_0123456789ab", "docker", cancel)))  # fmt: skip
        thread.start()
        thread.join(0.5)
        held = thread.is_alive()
        started = time.monotonic()
        cancel.cancel()
        thread.join(5)
        took = time.monotonic() - started
        before = len(requests(server))
        later = client.request_job(server.url, TOKEN, "s_0123456789ab", "docker", cancel)
        after = len(requests(server))
    assert held, "the request was held by the long poll before the cancel"
    assert took < 2 and result == [(None, False)], f"cancelled at once: {took:.2f}s {result}"
    assert later == (None, False) and after == before, "a later request is not even sent"


def runner_section(url: str, socket: Path) -> dict[str, Any]:
    """One ``[[runners]]`` entry: the fake GitLab and the fake Docker API."""
    return {
        "name": "protocol", "url": url, "token": TOKEN, "executor": "docker",
        "docker": {"host": f"unix://{socket}", "image": BASE, "volumes": ["/cache"],
                   "pull_policy": ["if-not-present"]},
    }  # fmt: skip


class TimedClient(GitLabClient):
    """Records when each job request started and ended, whether it carried a
    last_update, and its result."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[float, float, bool, tuple[dict[str, Any] | None, bool]]] = []

    def request_job(
        self, url: str, token: str, system_id: str, executor: str, cancel: Canceller | None = None
    ) -> tuple[dict[str, Any] | None, bool]:
        sends_value = bool(self.last_updates.get((url, token)))
        started = time.monotonic()
        result = super().request_job(url, token, system_id, executor, cancel)
        self.asked.append((started, time.monotonic(), sends_value, result))
        return result


def test_sigquit_does_not_wait_for_a_long_polled_request(tmp_path: Path) -> None:
    """A GitLab that holds job requests for 30 s: SIGQUIT ends `run` within seconds,
    since the stop cancels the held request (commands/multi.go interruptRun)."""
    with running(State([TOKEN], long_poll=30)) as server:
        path = tmp_path / "config.toml"
        section = runner_section(server.url, tmp_path / "docker.sock")
        config.save(path, {"concurrent": 1, "check_interval": 1, "runners": [section]})
        client = TimedClient()
        command = RunCommand(path, client)
        signaled: list[float] = []

        def stop_while_held() -> None:
            time.sleep(2.5)  # the first request (answered at once), then the held one
            signaled.append(time.monotonic())
            command._on_signal(signal.SIGQUIT, None)

        threading.Thread(target=stop_while_held, daemon=True).start()
        status = command.run()
        ended = time.monotonic()
    held = [a for a in client.asked if a[2]]
    assert held, f"a request with last_update was sent: {client.asked}"
    started, finished, _, result = held[0]
    assert started < signaled[0] < finished, "it was held when the signal came"
    assert finished - signaled[0] < 2 and result == (None, False), f"cancelled: {held[0]}"
    assert status == 0 and ended - signaled[0] < 3, f"graceful stop took {ended - signaled[0]}"


@pytest.fixture
def docker(tmp_path: Path) -> Iterator[FakeDocker]:
    """A fake engine with the job image and the stand-in's helper image present."""
    engine = FakeDocker(images={BASE: "sha256:" + "b" * 64, HELPER: "sha256:" + "c" * 64})
    with serving(tmp_path / "docker.sock", engine):
        yield engine


def test_the_runner_accepts_a_two_phase_job_before_running_it(
    tmp_path: Path, docker: FakeDocker
) -> None:
    """The stand-in advertises two_phase_job_commit: the fake GitLab keeps the job
    pending after the hand-out, the runner's first update (``running``) starts it, and
    the job then runs to success; the accept time is in the job's stamps."""
    with running(State([TOKEN])) as server:
        server.state.add_job({"script": ["echo hi"], "image": BASE})
        command = RunCommand(tmp_path / "config.toml", GitLabClient())
        command.system_id = "s_0123456789ab"
        runner = RunnerConfig.from_dict(runner_section(server.url, tmp_path / "docker.sock"))
        command._process(runner)
        record = server.state.job(1)
    info = requests(server)[0]["body"]["info"]
    assert info["features"]["two_phase_job_commit"] is True, "the feature is advertised"
    first = record["updates"][0]
    assert first["body"]["state"] == "running" and first["job_status"] == "running", first
    stamps = record["stamps"]
    assert stamps["picked"]["mono"] <= stamps["started"]["mono"], stamps
    accepted_at = first["at"]["mono"] - stamps["started"]["mono"]
    assert 0 <= accepted_at < 0.05, f"started by the runner's acceptance: {accepted_at}"
    assert stamps["started"]["mono"] <= stamps["first_trace"]["mono"], stamps
    assert record["state"] == "success", record["trace"][-800:]
