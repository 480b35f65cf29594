"""The runner in the image speaks GitLab's job protocol as gitlab-runner v18.11.4 does:
it accepts a two-phase job before running it (commands/multi.go ``requestJob`` sends
``running``; GitLab's ``UpdateBuildStateService`` starts the job on it) and sends back
the ``last_update`` GitLab gave it (network/gitlab.go ``PrepareJobRequest``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fakegitlab.ctl import Client
from tests.harness.joblog import JobLog
from tests.image.conftest import Pipglr, queue

pytestmark = [pytest.mark.image, pytest.mark.slow]


def runner_requests(gitlab: Client, token: str) -> list[dict[str, Any]]:
    """This runner's job requests, in the order the fake GitLab answered them."""
    every = gitlab.requests(path="/api/v4/jobs/request")
    return [r for r in every if (r.get("body") or {}).get("token") == token]


def test_the_runner_accepts_its_job_before_it_runs(pipglr: Pipglr, fake_gitlab: Client) -> None:
    """The runner advertises two_phase_job_commit, so the fake GitLab keeps the handed-out
    job pending; the runner's first update (``running``) starts it, and it succeeds."""
    job = fake_gitlab.wait(queue(fake_gitlab, pipglr, name="accepted", script=["echo ran"]),
                           timeout=180)  # fmt: skip
    assert job["state"] == "success" and JobLog.of(job).has_line("ran"), JobLog.of(job).tail()
    asked = runner_requests(fake_gitlab, pipglr.runner_tokens()[0])
    assert asked and all(r["body"]["info"]["features"]["two_phase_job_commit"] for r in asked)
    first = job["updates"][0]
    assert (first["body"]["state"], first["status"], first["job_status"]) == (
        "running", 200, "running"
    ), first  # fmt: skip
    stamps = job["stamps"]
    assert stamps["picked"]["mono"] <= stamps["started"]["mono"], stamps
    assert abs(first["at"]["mono"] - stamps["started"]["mono"]) < 0.5, "started on acceptance"
    assert stamps["started"]["mono"] <= stamps["first_trace"]["mono"], stamps


def test_job_requests_send_back_the_last_update(pipglr: Pipglr, fake_gitlab: Client) -> None:
    """After an answer carrying X-GitLab-Last-Update, the runner's next job request sends
    that value as last_update (none only right after a runner restart)."""
    asked = runner_requests(fake_gitlab, pipglr.runner_tokens()[0])
    pairs = [
        (before["response_headers"]["X-GitLab-Last-Update"], after["body"].get("last_update"))
        for before, after in zip(asked, asked[1:], strict=False)
        if "X-GitLab-Last-Update" in before["response_headers"]
    ]
    assert pairs, f"no answer carried a last_update: {json.dumps(asked[-3:])[:1500]}"
    wrong = [(given, sent) for given, sent in pairs if sent not in (given, None)]
    assert not wrong, f"sent back something else than given: {wrong[:5]}"
    assert sum(given == sent for given, sent in pairs) >= len(pairs) // 2, pairs[-10:]
