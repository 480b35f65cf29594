"""Job specs (what tests write) turned into real-format GitLab job payloads.

A *spec* is a small dict; :func:`normalize_spec` checks it and fills the defaults,
:func:`build_job` renders the ``JobResponse`` GitLab sends on ``201`` from
``POST /api/v4/jobs/request``. The shape mirrors gitlab-runner ``common/spec/spec.go``
(``Job`` and friends) and GitLab ``lib/api/entities/ci/job_request/response.rb``; the
predefined variables mirror GitLab ``app/models/ci/build.rb`` (``persisted_variables``)
and ``lib/gitlab/ci/variables/builder/{pipeline,project}.rb``; registry ``credentials``:
:mod:`.credentials`. Pure functions only.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from . import credentials

#: Keys a spec may carry; anything else is a typo and refused.
SPEC_KEYS = frozenset(
    {
        "project_id", "project_path", "name", "stage", "image", "services", "script",
        "after_script", "variables", "cache", "timeout", "git_strategy", "repo_url", "ref",
        "sha", "pipeline_id", "runner", "tags", "accept_final", "artifacts", "dependencies",
        "credentials",
    }
)  # fmt: skip
GIT_STRATEGIES = ("none", "fetch", "clone", "empty")
CACHE_POLICIES = ("pull-push", "pull", "push")
WHENS = ("on_success", "on_failure", "always")
ZERO_SHA = "0" * 40
SERVER_VERSION = "18.6.0-pipglr-fake"
#: ``features.failure_reasons``: GitLab sends every key of its failure_reason enum
#: (``app/models/concerns/enums/ci/commit_status.rb``); these are the runner-facing ones.
FAILURE_REASONS = (
    "unknown_failure", "script_failure", "api_failure", "stuck_or_timeout_failure",
    "runner_system_failure", "missing_dependency_failure", "runner_unsupported",
    "job_execution_timeout", "archived_failure", "unmet_prerequisites", "scheduler_failure",
    "data_integrity_failure", "runner_configuration_error",
    "runner_external_dependency_failure", "runner_interrupted",
)  # fmt: skip


class SpecError(ValueError):
    """A job spec that cannot become a job (one line, for ``ctl add-job``)."""


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise SpecError(f"{what} must be a list of strings, not {value!r}")
    return list(value)


def _variable(key: str, value: Any) -> dict[str, Any]:
    """One ``{key,value,public,file,masked,raw}`` entry from the str or dict form."""
    if isinstance(value, str):
        return {
            "key": key,
            "value": value,
            "public": True,
            "file": False,
            "masked": False,
            "raw": False,
        }
    if isinstance(value, Mapping) and isinstance(value.get("value"), str):
        unknown = set(value) - {"value", "file", "masked", "raw", "public"}
        if unknown:
            raise SpecError(f"variable {key}: unknown keys {sorted(unknown)}")
        return {
            "key": key,
            "value": value["value"],
            "public": bool(value.get("public", not value.get("masked", False))),
            "file": bool(value.get("file", False)),
            "masked": bool(value.get("masked", False)),
            "raw": bool(value.get("raw", False)),
        }
    raise SpecError(f"variable {key} must be a string or {{'value': str, ...}}, not {value!r}")


def _service(entry: Any) -> dict[str, Any]:
    """A service (or image) entity: ``name`` plus optional alias/command/entrypoint."""
    if isinstance(entry, str):
        entry = {"name": entry}
    if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
        raise SpecError(f"a service must be an image name or {{'name': ...}}, not {entry!r}")
    unknown = set(entry) - {"name", "alias", "command", "entrypoint"}
    if unknown:
        raise SpecError(f"service {entry['name']}: unknown keys {sorted(unknown)}")
    service: dict[str, Any] = {"name": entry["name"], "ports": [], "variables": []}
    if entry.get("alias"):
        service["alias"] = str(entry["alias"])
    for key in ("command", "entrypoint"):
        if key in entry:
            service[key] = _strings(entry[key], f"service {entry['name']} {key}")
    return service


def _cache(entry: Any) -> dict[str, Any]:
    """A cache entity as ``spec.Cache`` reads it (key, untracked, policy, paths, when)."""
    if not isinstance(entry, Mapping):
        raise SpecError(f"a cache entry must be a dict, not {entry!r}")
    unknown = set(entry) - {"key", "paths", "policy", "when", "untracked", "fallback_keys"}
    if unknown:
        raise SpecError(f"cache entry: unknown keys {sorted(unknown)}")
    cache = {
        "key": str(entry.get("key", "default")),
        "untracked": bool(entry.get("untracked", False)),
        "policy": entry.get("policy", "pull-push"),
        "paths": _strings(entry.get("paths", []), "cache paths"),
        "when": entry.get("when", "on_success"),
        "fallback_keys": _strings(entry.get("fallback_keys", []), "cache fallback_keys"),
    }
    if cache["policy"] not in CACHE_POLICIES:
        raise SpecError(f"cache policy must be one of {CACHE_POLICIES}, not {cache['policy']!r}")
    if cache["when"] not in WHENS:
        raise SpecError(f"cache when must be one of {WHENS}, not {cache['when']!r}")
    return cache


def _int(spec: Mapping[str, Any], key: str, default: int, minimum: int) -> int:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(f"{key} must be an integer >= {minimum}, not {value!r}")
    return value


def _text(spec: Mapping[str, Any], key: str, default: str | None) -> str | None:
    value = spec.get(key, default)
    if value is not None and not isinstance(value, str):
        raise SpecError(f"{key} must be a string, not {value!r}")
    return value


def normalize_spec(spec: Any) -> dict[str, Any]:
    """Check a spec and return it with every default filled in.

    Raises :class:`SpecError` with one line naming the bad key.
    """
    if not isinstance(spec, Mapping):
        raise SpecError(f"a job spec must be a JSON object, not {spec!r}")
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise SpecError(f"unknown spec keys {sorted(unknown)}; known: {sorted(SPEC_KEYS)}")
    project_id = _int(spec, "project_id", 1, 1)
    script = _strings(spec.get("script", []), "script")
    if not script:
        raise SpecError("a job needs a non-empty 'script' list")
    variables = spec.get("variables", {})
    if not isinstance(variables, Mapping):
        raise SpecError(f"variables must be a dict, not {variables!r}")
    repo_url = _text(spec, "repo_url", None)
    git_strategy = _text(spec, "git_strategy", None if repo_url else "none")
    if git_strategy is not None and git_strategy not in GIT_STRATEGIES:
        raise SpecError(f"git_strategy must be one of {GIT_STRATEGIES}, not {git_strategy!r}")
    cache = spec.get("cache", [])
    services = spec.get("services", [])
    if not isinstance(cache, list) or not isinstance(services, list):
        raise SpecError("cache and services must be lists")
    ref = _text(spec, "ref", "main") or "main"
    try:
        registry_credentials = credentials.normalize_credentials(spec.get("credentials", []))
    except credentials.CredentialsError as exc:
        raise SpecError(str(exc)) from None
    return {
        "project_id": project_id,
        "project_path": _text(spec, "project_path", f"group/project-{project_id}"),
        "name": _text(spec, "name", "test"),
        "stage": _text(spec, "stage", "test"),
        "image": _text(spec, "image", None),
        "services": [_service(entry) for entry in services],
        "script": script,
        "after_script": _strings(spec.get("after_script", []), "after_script"),
        "variables": [_variable(str(key), value) for key, value in variables.items()],
        "cache": [_cache(entry) for entry in cache],
        "timeout": _int(spec, "timeout", 3600, 1),
        "git_strategy": git_strategy,
        "repo_url": repo_url,
        "ref": ref,
        "sha": _text(spec, "sha", None) or hashlib.sha1(f"{project_id}:{ref}".encode()).hexdigest(),
        "pipeline_id": spec.get("pipeline_id"),
        "runner": _text(spec, "runner", None),
        "tags": _strings(spec.get("tags", []), "tags"),
        "accept_final": _int(spec, "accept_final", 0, 0),
        "credentials": registry_credentials,
    }


def slugify(text: str) -> str:
    """GitLab's ``*_SLUG``: lowercase, ``[^a-z0-9]`` → ``-``, at most 63, no edge dashes."""
    return re.sub(r"[^a-z0-9]", "-", text.lower())[:63].strip("-")


def repo_url(spec: Mapping[str, Any], token: str, server_url: str) -> str:
    """``git_info.repo_url``: the project's http URL with ``gitlab-ci-token:TOKEN@``.

    Mirrors ``Ci::Build#repo_url`` (app/models/ci/build.rb); gitlab-runner derives the
    project directory from its path (common/build.go ``ProjectUniqueDir``).
    """
    if spec["repo_url"]:
        return str(spec["repo_url"])
    parts = urlsplit(server_url)
    return f"{parts.scheme}://gitlab-ci-token:{token}@{parts.netloc}/{spec['project_path']}.git"


def _plain(key: str, value: str, *, public: bool = True, masked: bool = False) -> dict[str, Any]:
    return {
        "key": key,
        "value": value,
        "public": public,
        "file": False,
        "masked": masked,
        "raw": False,
    }


def predefined_variables(
    spec: Mapping[str, Any], job_id: int, token: str, server_url: str
) -> list[dict[str, Any]]:
    """The CI_* variables GitLab puts in front of the job's own variables."""
    parts = urlsplit(server_url)
    port = str(parts.port or (443 if parts.scheme == "https" else 80))
    path = str(spec["project_path"])
    namespace, _, name = path.rpartition("/")
    project_url = f"{server_url}/{path}"
    pipeline_id = str(spec["pipeline_id"] or job_id)
    pairs = [
        ("CI", "true"), ("GITLAB_CI", "true"), ("CI_SERVER_URL", server_url),
        ("CI_SERVER_HOST", parts.hostname or ""), ("CI_SERVER_PORT", port),
        ("CI_SERVER_PROTOCOL", parts.scheme), ("CI_SERVER_FQDN", parts.netloc),
        ("CI_SERVER_NAME", "GitLab"), ("CI_SERVER_VERSION", SERVER_VERSION),
        ("CI_API_V4_URL", f"{server_url}/api/v4"),
        ("CI_PROJECT_ID", str(spec["project_id"])), ("CI_PROJECT_NAME", name),
        ("CI_PROJECT_TITLE", name), ("CI_PROJECT_PATH", path),
        ("CI_PROJECT_PATH_SLUG", slugify(path)), ("CI_PROJECT_NAMESPACE", namespace),
        ("CI_PROJECT_ROOT_NAMESPACE", namespace.split("/")[0]),
        ("CI_PROJECT_URL", project_url), ("CI_PROJECT_VISIBILITY", "private"),
        ("CI_DEFAULT_BRANCH", "main"), ("CI_CONFIG_PATH", ".gitlab-ci.yml"),
        ("CI_PIPELINE_ID", pipeline_id), ("CI_PIPELINE_IID", pipeline_id),
        ("CI_PIPELINE_SOURCE", "push"),
        ("CI_PIPELINE_URL", f"{project_url}/-/pipelines/{pipeline_id}"),
        ("CI_COMMIT_SHA", spec["sha"]), ("CI_COMMIT_SHORT_SHA", spec["sha"][:8]),
        ("CI_COMMIT_BEFORE_SHA", ZERO_SHA), ("CI_COMMIT_REF_NAME", spec["ref"]),
        ("CI_COMMIT_REF_SLUG", slugify(spec["ref"])), ("CI_COMMIT_BRANCH", spec["ref"]),
        ("CI_COMMIT_REF_PROTECTED", "false"), ("CI_COMMIT_MESSAGE", "pipglr test job"),
        ("CI_COMMIT_TITLE", "pipglr test job"),
        ("CI_JOB_ID", str(job_id)), ("CI_JOB_URL", f"{project_url}/-/jobs/{job_id}"),
        ("CI_JOB_NAME", spec["name"]), ("CI_JOB_NAME_SLUG", slugify(spec["name"])),
        ("CI_JOB_STAGE", spec["stage"]), ("CI_NODE_TOTAL", "1"),
        ("CI_REGISTRY_USER", "gitlab-ci-token"),
        ("GITLAB_USER_ID", "1"), ("GITLAB_USER_LOGIN", "pipglr"),
        ("GITLAB_USER_EMAIL", "pipglr@example.invalid"), ("GITLAB_USER_NAME", "pipglr"),
    ]  # fmt: skip
    variables = [_plain(key, value) for key, value in pairs]
    variables += [
        _plain("CI_JOB_TOKEN", token, public=False, masked=True),
        _plain("CI_REGISTRY_PASSWORD", token, public=False, masked=True),
        _plain("CI_REPOSITORY_URL", repo_url(spec, token, server_url), public=False),
    ]
    if spec["git_strategy"]:
        variables.append(_plain("GIT_STRATEGY", spec["git_strategy"]))
    return variables


def job_variables(
    spec: Mapping[str, Any], job_id: int, token: str, server_url: str
) -> list[dict[str, Any]]:
    """Predefined variables, then the spec's own (which replace same-named ones)."""
    own = list(spec["variables"])
    keys = {variable["key"] for variable in own}
    base = predefined_variables(spec, job_id, token, server_url)
    return [variable for variable in base if variable["key"] not in keys] + own


def steps(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``script`` (on_success) and, when given, ``after_script`` (always)."""
    result = [
        {
            "name": "script",
            "script": list(spec["script"]),
            "timeout": spec["timeout"],
            "when": "on_success",
            "allow_failure": False,
        }
    ]
    if spec["after_script"]:
        result.append(
            {
                "name": "after_script",
                "script": list(spec["after_script"]),
                "timeout": spec["timeout"],
                "when": "always",
                "allow_failure": False,
            }
        )
    return result


def build_job(
    spec: Mapping[str, Any],
    *,
    job_id: int,
    token: str,
    server_url: str,
    runner_uuid: str = "",
    artifacts: Sequence[Mapping[str, Any]] = (),
    dependencies: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The ``201`` body of ``POST /jobs/request`` for a normalized spec.

    ``server_url`` is the coordinator URL the runner used (no trailing slash);
    ``artifacts`` and ``dependencies`` are rendered by :mod:`.artifacts`.
    """
    server_url = server_url.rstrip("/")
    path = str(spec["project_path"])
    name, ref = path.rpartition("/")[2], spec["ref"]
    return {
        "id": job_id,
        "token": token,
        "allow_git_fetch": spec["git_strategy"] != "clone",
        "job_info": {
            "id": job_id,
            "name": spec["name"],
            "stage": spec["stage"],
            "pipeline_id": spec["pipeline_id"] or job_id,
            "project_id": spec["project_id"],
            "project_name": name,
            "project_full_path": path,
            "namespace_id": 1,
            "root_namespace_id": 1,
            "organization_id": 1,
            "instance_id": "",
            "instance_uuid": "",
            "user_id": 1,
            "time_in_queue_seconds": 0.0,
            "project_jobs_running_on_instance_runners_count": "+Inf",
            "queue_size": 0,
            "queue_depth": 0,
        },
        "git_info": {
            "repo_url": repo_url(spec, token, server_url),
            "repo_object_format": "sha1",
            "ref": spec["ref"],
            "sha": spec["sha"],
            "before_sha": ZERO_SHA,
            "ref_type": "branch",
            "refspecs": [f"+refs/heads/{ref}:refs/remotes/origin/{ref}"],
            "depth": 20,
            "protected": False,
        },
        "runner_info": {
            "uuid": runner_uuid,
            "timeout": spec["timeout"],
            "runner_session_url": None,
        },
        "variables": job_variables(spec, job_id, token, server_url),
        "steps": steps(spec),
        "image": {"name": spec["image"], "ports": []} if spec["image"] else None,
        "services": [dict(service) for service in spec["services"]],
        "artifacts": [dict(entry) for entry in artifacts],
        "cache": [dict(cache) for cache in spec["cache"]],
        "credentials": credentials.render(spec.get("credentials", []), token),
        "dependencies": [dict(entry) for entry in dependencies],
        # app/models/ci/build.rb ``Ci::Build#features``: trace_sections and
        # failure_reasons only; GitLab sends no ``token_mask_prefixes`` (the runner
        # masks its own default prefixes, tokensanitizer/token_masker.go)
        "features": {
            "trace_sections": True,
            "failure_reasons": list(FAILURE_REASONS),
        },
        "hooks": [],
    }
