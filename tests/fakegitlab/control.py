"""Test-control endpoints under ``/_pipglr/`` (no GitLab counterpart).

``POST /_pipglr/jobs`` (spec → ``{"id"}``), ``GET /_pipglr/jobs``,
``GET /_pipglr/jobs/<id>``, ``GET /_pipglr/jobs/<id>/artifacts`` (what the job uploaded,
with the archive's members), ``POST /_pipglr/jobs/<id>/cancel`` (``{"force": true}``
ends a ``canceling`` job at once), ``GET /_pipglr/requests?since=N&path=PREFIX``,
``GET /_pipglr/runners``. Errors are ``{"error": "..."}``.
"""

from __future__ import annotations

import re

from .payloads import SpecError
from .state import State
from .wire import Request, Response, json_response, route


def _error(status: int, message: str) -> Response:
    return json_response(status, {"error": message})


def add_job(state: State, request: Request, _: re.Match[str]) -> Response:
    """Queue a job; 400 with the spec problem in one line."""
    try:
        job = state.add_job(request.json())
    except SpecError as exc:
        return _error(400, str(exc))
    return json_response(201, {"id": job.id})


def list_jobs(state: State, request: Request, _: re.Match[str]) -> Response:
    """Every job (summaries)."""
    return json_response(200, state.jobs())


def get_job(state: State, request: Request, match: re.Match[str]) -> Response:
    """One job in full: state, trace, updates, stamps, payload."""
    try:
        return json_response(200, state.job(int(match["id"])))
    except KeyError:
        return _error(404, f"no job {match['id']}")


def job_artifacts(state: State, request: Request, match: re.Match[str]) -> Response:
    """What a job uploaded: type, format, file name, size, SHA-256 and the zip members."""
    try:
        return json_response(200, state.job_artifacts(int(match["id"])))
    except KeyError:
        return _error(404, f"no job {match['id']}")


def cancel_job(state: State, request: Request, match: re.Match[str]) -> Response:
    """Cancel a job the way the GitLab UI does (``force`` for the second click)."""
    force = bool(request.json_object().get("force", False))
    try:
        return json_response(200, state.cancel(int(match["id"]), force=force))
    except KeyError:
        return _error(404, f"no job {match['id']}")


def list_requests(state: State, request: Request, _: re.Match[str]) -> Response:
    """The runner request log, after ``since`` and under ``path`` when given."""
    since = request.param("since") or "0"
    if not since.isdigit():
        return _error(400, f"since must be a number, not {since!r}")
    return json_response(200, state.request_log.since(int(since), request.param("path")))


def list_runners(state: State, request: Request, _: re.Match[str]) -> Response:
    """The runners the coordinator knows."""
    return json_response(200, state.runners.to_list())


ROUTES = [
    route("POST", r"/_pipglr/jobs", add_job),
    route("GET", r"/_pipglr/jobs", list_jobs),
    route("GET", r"/_pipglr/jobs/(?P<id>\d+)", get_job),
    route("GET", r"/_pipglr/jobs/(?P<id>\d+)/artifacts", job_artifacts),
    route("POST", r"/_pipglr/jobs/(?P<id>\d+)/cancel", cancel_job),
    route("GET", r"/_pipglr/requests", list_requests),
    route("GET", r"/_pipglr/runners", list_runners),
]
