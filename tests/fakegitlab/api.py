"""The GitLab runner API (``/api/v4/runners*``, ``/api/v4/jobs*``) as gitlab-runner uses it.

Endpoints, parameters and status codes mirror GitLab ``lib/api/ci/runner.rb`` and
``lib/api/ci/helpers/runner.rb``; what the runner expects back mirrors gitlab-runner
``network/gitlab.go`` (``VerifyRunner``, ``RegisterRunner``, ``UnregisterRunner``,
``ResetToken``, ``RequestJob``, ``UpdateJob``, ``PatchTrace``, ``UploadRawArtifacts``,
``DownloadArtifacts``). The artifacts rules live in :mod:`.artifactstore`; the runner
never calls ``/artifacts/authorize`` (Workhorse does), so that is not served.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from .artifactstore import StoredArtifact, Upload
from .state import Runner, State
from .wire import Request, Response, from_reply, json_response, route

FORBIDDEN = {"message": "403 Forbidden"}


def _details(runner: Runner) -> dict[str, object]:
    """``Entities::Ci::RunnerRegistrationDetails``; no expiry, so no token rotation."""
    return {"id": runner.id, "token": runner.token, "token_expires_at": None}


def verify(state: State, request: Request, _: re.Match[str]) -> Response:
    """``POST /runners/verify`` → 200 details, 403 for an unknown token."""
    runner = state.runners.contact(request.json_object())
    return json_response(200, _details(runner)) if runner else json_response(403, FORBIDDEN)


def register(state: State, request: Request, _: re.Match[str]) -> Response:
    """Legacy ``POST /runners`` with a registration token → 201 details, 403 otherwise."""
    runner = state.runners.register(request.json_object())
    return json_response(201, _details(runner)) if runner else json_response(403, FORBIDDEN)


def unregister(state: State, request: Request, _: re.Match[str]) -> Response:
    """``DELETE /runners`` → 204, or 403 for an unknown token."""
    token = str(request.json_object().get("token"))
    return Response(204) if state.runners.unregister(token) else json_response(403, FORBIDDEN)


def unregister_manager(state: State, request: Request, _: re.Match[str]) -> Response:
    """``DELETE /runners/managers`` (one system id of a runner) → 204 or 403."""
    body = request.json_object()
    return Response(204) if state.runners.contact(body) else json_response(403, FORBIDDEN)


def reset_token(state: State, request: Request, _: re.Match[str]) -> Response:
    """``POST /runners/reset_authentication_token`` → 201 ``{token, token_expires_at}``."""
    runner = state.runners.reset_token(str(request.json_object().get("token")))
    if runner is None:
        return json_response(403, FORBIDDEN)
    return json_response(201, {"token": runner.token, "token_expires_at": None})


def server_url(state_url: str | None, request: Request) -> str:
    """The coordinator URL put into payloads: ``--external-url`` or the Host used."""
    return (state_url or f"http://{request.header('Host') or '127.0.0.1'}").rstrip("/")


def request_job(state: State, request: Request, _: re.Match[str]) -> Response:
    """``POST /jobs/request`` → 201 job payload, 204 no job, 403 unknown runner."""
    url = server_url(state.external_url, request)
    return from_reply(state.request_job(request.json_object(), url))


def update_job(state: State, request: Request, match: re.Match[str]) -> Response:
    """``PUT /jobs/:id``: token from the body (GitLab's ``params[:token]``) or JOB-TOKEN."""
    body = request.json_object()
    token = body.get("token") or request.header("JOB-TOKEN")
    return from_reply(state.update_job(int(match["id"]), token, body))


def patch_trace(state: State, request: Request, match: re.Match[str]) -> Response:
    """``PATCH /jobs/:id/trace``: JOB-TOKEN header (or ``token`` parameter)."""
    token = request.param("token") or request.header("JOB-TOKEN")
    content_range = request.header("Content-Range")
    return from_reply(state.patch_trace(int(match["id"]), token, content_range, request.body))


def job_token(request: Request) -> str | None:
    """``job_token`` of lib/api/ci/helpers/runner.rb: ``token`` parameter or JOB-TOKEN."""
    return request.param("token") or request.header("JOB-TOKEN")


def upload_artifacts(state: State, request: Request, match: re.Match[str]) -> Response:
    """``POST /jobs/:id/artifacts``: multipart ``file``, query ``artifact_type``,
    ``artifact_format``, ``expire_in`` → 201 ``201``, or 400/403/413."""

    def body() -> Upload:
        return Upload.parse(request.header("Content-Type"), request.body, request.query)

    return from_reply(state.upload_artifacts(int(match["id"]), job_token(request), body))


def download_artifacts(state: State, request: Request, match: re.Match[str]) -> Response:
    """``GET /jobs/:id/artifacts`` (``direct_download`` accepted): the archive as
    ``present_artifacts_file!`` sends it, or 401/403/404."""
    found = state.download_artifacts(int(match["id"]), job_token(request))
    if not isinstance(found, StoredArtifact):
        return from_reply(found)
    disposition = (
        f"attachment; filename=\"{found.filename}\"; filename*=UTF-8''{quote(found.filename)}"
    )
    headers = {"Content-Disposition": disposition, "Content-Transfer-Encoding": "binary"}
    return Response(200, found.data, "application/octet-stream", headers)


ROUTES = [
    route("POST", r"/api/v4/runners/verify", verify),
    route("POST", r"/api/v4/runners", register),
    route("DELETE", r"/api/v4/runners", unregister),
    route("DELETE", r"/api/v4/runners/managers", unregister_manager),
    route("POST", r"/api/v4/runners/reset_authentication_token", reset_token),
    route("POST", r"/api/v4/jobs/request", request_job),
    route("PUT", r"/api/v4/jobs/(?P<id>\d+)", update_job),
    route("PATCH", r"/api/v4/jobs/(?P<id>\d+)/trace", patch_trace),
    route("POST", r"/api/v4/jobs/(?P<id>\d+)/artifacts", upload_artifacts),
    route("GET", r"/api/v4/jobs/(?P<id>\d+)/artifacts", download_artifacts),
]
