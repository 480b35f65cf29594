"""Registry credentials in job payloads, as GitLab renders them.

GitLab's ``JobRequest::Response`` exposes ``credentials`` with
``lib/api/entities/ci/job_request/credentials.rb`` (``expose :type, :url, :username,
:password``: all four keys, always). The list comes from
``lib/gitlab/ci/build/credentials/factory.rb`` (``Registry::GitlabRegistry`` and
``Registry::DependencyProxy``, each when enabled): type ``registry``, user
``gitlab-ci-token`` (``Gitlab::Auth::CI_JOB_USER``), the job token as password, and the
container registry's ``host_port`` or GitLab's ``host:port`` as ``url``
(``registry/gitlab_registry.rb``, ``registry/dependency_proxy.rb``). A GitLab without a
registry sends ``[]``.

A spec may give ``credentials`` as a list of ``{type, url, username, password}``
(strings; ``username``/``password`` may be left out for the job-token entry GitLab
makes). ``DOCKER_AUTH_CONFIG`` needs nothing here: it is an ordinary CI/CD variable
(``variables: {"DOCKER_AUTH_CONFIG": {"value": ..., "masked": true}}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: lib/api/entities/ci/job_request/credentials.rb
KEYS = ("type", "url", "username", "password")
#: Gitlab::Auth::CI_JOB_USER
CI_JOB_USER = "gitlab-ci-token"


class CredentialsError(ValueError):
    """A ``credentials`` spec entry that GitLab could not have sent."""


def normalize_credentials(value: Any) -> list[dict[str, str | None]]:
    """Check a spec's ``credentials``: a list of entries with string fields; a missing
    ``username``/``password`` is ``None`` (filled in per job by :func:`render`)."""
    if not isinstance(value, list):
        raise CredentialsError(f"credentials must be a list, not {value!r}")
    entries = []
    for entry in value:
        if not isinstance(entry, Mapping):
            raise CredentialsError(f"a credentials entry must be a dict, not {entry!r}")
        unknown = set(entry) - set(KEYS)
        if unknown:
            raise CredentialsError(f"credentials entry: unknown keys {sorted(unknown)}")
        for key in ("type", "url"):
            if not isinstance(entry.get(key), str):
                raise CredentialsError(f"credentials entry needs a string {key!r}: {entry!r}")
        for key in ("username", "password"):
            if key in entry and not isinstance(entry[key], str):
                raise CredentialsError(f"credentials {key} must be a string: {entry!r}")
        entries.append({key: entry.get(key) for key in KEYS})
    return entries


def render(entries: list[dict[str, str | None]], job_token: str) -> list[dict[str, str]]:
    """The payload's ``credentials``: every exposed key present; a left-out username
    and password are GitLab's own (``gitlab-ci-token`` and the job token)."""
    return [
        {
            "type": str(entry["type"]),
            "url": str(entry["url"]),
            "username": CI_JOB_USER if entry["username"] is None else str(entry["username"]),
            "password": job_token if entry["password"] is None else str(entry["password"]),
        }
        for entry in entries
    ]
