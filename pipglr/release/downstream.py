"""Trigger downstream projects' pipelines after a publish (GitLab's trigger API).

Projects whose images are built on pipglr's are listed in a TOML file::

    [[downstream]]
    project = "group/image-on-pipglr"   # or the numeric project id
    ref = "main"
    token_variable = "IMAGE_ON_PIPGLR_TRIGGER_TOKEN"   # CI variable holding the token
    variables = { BUILD_REASON = "pipglr published" }

Each gets ``POST /projects/:id/trigger/pipeline`` with its trigger token, ref and
variables, plus ``PIPGLR_IMAGE`` (what was published). :func:`trigger_request`
builds the request (unit-tested); :func:`send` performs it. Tokens come from the
environment, never from the file, and are never printed.
"""

from __future__ import annotations

import json
import os
import tomllib
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipglr.errors import PipglrError, UsageError


class TriggerError(PipglrError):
    """A downstream pipeline could not be triggered."""


@dataclass(frozen=True)
class Downstream:
    """One project to trigger."""

    project: str
    token_variable: str
    ref: str = "main"
    variables: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TriggerRequest:
    """A ready ``POST``: URL, form body and the project it is for."""

    project: str
    url: str
    fields: tuple[tuple[str, str], ...] = field(repr=False)

    def body(self) -> bytes:
        """The form-encoded body (holds the token)."""
        return urllib.parse.urlencode(self.fields).encode()

    def describe(self) -> str:
        """One printable line: the URL and every field but the token."""
        shown = ", ".join(f"{k}={v}" for k, v in self.fields if k != "token")
        return f"POST {self.url} ({shown}, token=***)"


def load(path: Path) -> list[Downstream]:
    """Read the ``[[downstream]]`` entries of a TOML file."""
    try:
        data = tomllib.loads(path.read_text())
        return [Downstream(**entry) for entry in data.get("downstream", [])]
    except (OSError, tomllib.TOMLDecodeError, TypeError) as exc:
        raise UsageError(f"{path}: not a list of [[downstream]] projects ({exc})") from exc


def trigger_request(
    api_url: str, downstream: Downstream, token: str, extra: Mapping[str, str]
) -> TriggerRequest:
    """The trigger API request for ``downstream`` (``api_url`` is ``$CI_API_V4_URL``)."""
    if not api_url.startswith(("https://", "http://")):
        raise UsageError(f"{api_url!r} is not a GitLab API URL: use e.g. $CI_API_V4_URL")
    project = urllib.parse.quote(downstream.project, safe="")
    url = f"{api_url.rstrip('/')}/projects/{project}/trigger/pipeline"
    variables = {**downstream.variables, **extra}
    fields = (
        ("token", token),
        ("ref", downstream.ref),
        *((f"variables[{key}]", str(value)) for key, value in sorted(variables.items())),
    )
    return TriggerRequest(downstream.project, url, fields)


def requests_for(
    entries: list[Downstream],
    api_url: str,
    extra: Mapping[str, str],
    environ: Mapping[str, str] = os.environ,
) -> list[TriggerRequest]:
    """One request per entry, its token read from ``environ``."""
    requests = []
    for entry in entries:
        token = environ.get(entry.token_variable, "")
        if not token:
            raise UsageError(
                f"no trigger token for {entry.project}: set the CI variable "
                f"{entry.token_variable} (masked) to the project's pipeline trigger token"
            )
        requests.append(trigger_request(api_url, entry, token, extra))
    return requests


def send(request: TriggerRequest, opener: Callable[..., Any] = urllib.request.urlopen) -> str:
    """Perform ``request``; return the new pipeline's web URL (or id)."""
    post = urllib.request.Request(request.url, data=request.body(), method="POST")
    try:
        with opener(post, timeout=30) as response:
            answer = json.loads(response.read() or b"{}")
    except (OSError, ValueError) as exc:
        raise TriggerError(f"triggering {request.project} failed: {exc}") from exc
    return str(answer.get("web_url") or answer.get("id") or "triggered")


def trigger(
    projects: Path, api_url: str, image: str, dry_run: bool, say: Callable[[str], object] = print
) -> int:
    """``invoke trigger-downstream``: say each request of ``projects`` (tokens hidden)
    and, unless ``dry_run``, send it and say the pipeline started; the project count."""
    entries = load(projects)
    for request in requests_for(entries, api_url, {"PIPGLR_IMAGE": image}):
        say(request.describe())
        if not dry_run:
            say(f"  started {send(request)}")
    return len(entries)
