"""Plain request/response values between the HTTP handler and the endpoint functions."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .records import Reply
from .state import State


class BadRequest(ValueError):
    """The request cannot be handled as sent (400 with this message)."""


@dataclass
class Request:
    """One parsed HTTP request."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        """A header by case-insensitive name."""
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)

    def json(self) -> Any:
        """The body as JSON (``{}`` when empty); BadRequest when it is not JSON."""
        if not self.body.strip():
            return {}
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise BadRequest(f"body is not JSON: {exc}") from exc

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object; BadRequest otherwise."""
        data = self.json()
        if not isinstance(data, dict):
            raise BadRequest("body must be a JSON object")
        return data

    def param(self, name: str) -> str | None:
        """The first value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class Response:
    """What the handler writes back (it always sets Content-Length)."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, data: Any, headers: dict[str, str] | None = None) -> Response:
    """A JSON response."""
    return Response(status, json.dumps(data).encode(), headers=dict(headers or {}))


def from_reply(reply: Reply) -> Response:
    """Turn a state-level :class:`Reply` into the headers GitLab sends.

    ``Job-Status``, ``Range: 0-N`` and ``X-GitLab-Trace-Update-Interval`` as
    lib/api/ci/runner.rb sets them; ``X-GitLab-Last-Update`` as job_request.rb does.
    """
    headers: dict[str, str] = {}
    if reply.job_status is not None:
        headers["Job-Status"] = reply.job_status
    if reply.range_end is not None:
        headers["Range"] = f"0-{reply.range_end}"
    if reply.interval is not None:
        headers["X-GitLab-Trace-Update-Interval"] = str(reply.interval)
    if reply.last_update is not None:
        headers["X-GitLab-Last-Update"] = reply.last_update
    if isinstance(reply.body, (dict, list)):
        return json_response(reply.status, reply.body, headers)
    if reply.status >= 400:
        return json_response(reply.status, {"message": reply.body or str(reply.status)}, headers)
    text = "" if reply.body is None else str(reply.body)
    return Response(reply.status, text.encode(), "text/plain", headers)


Handler = Callable[[State, Request, "re.Match[str]"], Response]


@dataclass(frozen=True)
class Route:
    """A method plus a full-match path pattern and the function that answers it."""

    method: str
    pattern: re.Pattern[str]
    handler: Handler


def route(method: str, pattern: str, handler: Handler) -> Route:
    """Build a :class:`Route` from a regular expression string."""
    return Route(method, re.compile(pattern), handler)
