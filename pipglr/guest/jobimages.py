"""Images of the custom executor's job: the job image (pulled when absent, with the
job's registry credentials) and the runner's helper image (loaded from the image's
prebuilt archive when absent).

Registry credentials, first source naming the image's registry wins, the order of
helpers/docker/auth/auth.go ``Resolver.AllConfigs`` (what the docker executor does):

1. the job's ``DOCKER_AUTH_CONFIG`` variable (``CUSTOM_ENV_DOCKER_AUTH_CONFIG``);
2. the runner user's ``$HOME/.docker/config.json`` (:data:`pipglr.layout.RUNNER_DOCKER_CONFIG`,
   linked to the ``pipglr-registry-auth`` secret);
3. the job payload's ``credentials`` of type ``registry`` (``$JOB_RESPONSE_FILE``,
   executors/custom/custom.go ``createJobResponseFile``), else ``CI_REGISTRY_USER`` /
   ``CI_REGISTRY_PASSWORD`` for ``CI_REGISTRY``.

Only ``auths`` entries (``auth`` or ``username``/``password``); credential helpers are
not run. Matching is by registry host (``docker.io`` for names without one).

The helper image: named as the docker executor names it
(helpers/container/helperimage/info.go ``Version``, linux_info.go ``Create``:
``registry.gitlab.com/gitlab-org/gitlab-runner/gitlab-runner-helper:<arch>-v<x.y.z>``)
so both executors share one copy; when absent it is loaded from
``layout.HELPER_IMAGES_DIR/prebuilt-alpine-<arch>.docker.tar.zst`` (the archive
pipglr/build/helperarchive.py makes; executors/docker/internal/prebuilt/prebuilt.go
``imageLoad`` loads it likewise, then tags it), and pulled only when there is no
archive. ``--helper-image IMG`` overrides it (then pulled when absent).

A maintained job image (``pipglr images``, :mod:`pipglr.guest.maintained`) is chosen
by its bare NAME in ``image:`` (or ``--default-image NAME``): when the nested storage
holds ``localhost/NAME`` carrying :data:`pipglr.layout.MAINTAINED_LABEL` = NAME, the job
runs on it and nothing is pulled (:func:`maintained_image`). The runner user cannot
read the definitions on the storage volume, so the image itself is the evidence. Such
a NAME takes precedence over a Docker Hub image of the same short name; write
``docker.io/library/NAME`` for that one.
"""

from __future__ import annotations

import base64
import json
import os
import platform
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from podman.errors import ImageNotFound, NotFound

from pipglr import layout
from pipglr.guest.jobcontainer import SystemFailure

HELPER_REPO = "registry.gitlab.com/gitlab-org/gitlab-runner/gitlab-runner-helper"
ARCHIVE_SUFFIX = ".docker.tar.zst"
Auth = dict[str, str]


def helper_arch(machine: str | None = None) -> str:
    """linux_info.go ``architecture``: ``uname -m`` → the helper's arch name."""
    machine = machine or platform.machine()
    return {"armv6l": "arm", "armv7l": "arm", "aarch64": "arm64", "amd64": "x86_64"}.get(
        machine, machine or "x86_64"
    )


def helper_image(runner_version: str, machine: str | None = None) -> str:
    """info.go ``Version`` + linux_info.go ``Create`` (alpine flavour, no prefix)."""
    match = re.match(r"^[0-9]*\.[0-9]*\.[0-9]*", runner_version)
    version = f"v{match.group(0)}" if match and match.group(0) != ".." else "latest"
    return f"{HELPER_REPO}:{helper_arch(machine)}-{version}"


def helper_archive(machine: str | None = None, directory: Path | None = None) -> Path:
    """The prebuilt archive the image build bakes in for this architecture."""
    base = Path(str(directory or layout.HELPER_IMAGES_DIR))
    return base / f"prebuilt-alpine-{helper_arch(machine)}{ARCHIVE_SUFFIX}"


def registry_of(reference: str) -> str:
    """The registry host of an image reference (docker's normalization)."""
    first, slash, _ = reference.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first.lower()
    return "docker.io"


def _host(key: str) -> str:
    """An ``auths`` key (``https://index.docker.io/v1/``, ``host:port/path``) → host."""
    host = re.sub(r"(?i)^https?://", "", key).split("/", 1)[0].lower()
    return "docker.io" if host in ("index.docker.io", "registry-1.docker.io") else host


def _auths(text: str) -> dict[str, Auth]:
    """The usable ``auths`` entries of a docker ``config.json`` text, by host."""
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    found: dict[str, Auth] = {}
    for key, entry in ((data or {}).get("auths") or {}).items():
        if not isinstance(entry, dict):
            continue
        user, password = entry.get("username"), entry.get("password")
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except ValueError:
                continue
        if user and password:
            found.setdefault(_host(key), {"username": str(user), "password": str(password)})
    return found


def credentials(
    reference: str, env: Mapping[str, str], home_config: Path | None = None
) -> Auth | None:
    """The login for pulling ``reference`` (see the module docstring), or None."""
    host = registry_of(reference)
    if found := _auths(env.get("CUSTOM_ENV_DOCKER_AUTH_CONFIG", "")).get(host):
        return found
    config = (
        home_config or Path(os.environ.get("HOME", str(layout.RUNNER.home))) / ".docker/config.json"
    )
    try:
        if found := _auths(config.read_text()).get(host):
            return found
    except OSError:
        pass
    try:
        payload = json.loads(Path(env.get("JOB_RESPONSE_FILE", "")).read_text())
    except (OSError, ValueError):
        payload = {}
    for entry in (payload or {}).get("credentials") or []:
        if (
            isinstance(entry, dict)
            and entry.get("type") == "registry"
            and _host(str(entry.get("url"))) == host
        ):
            return {"username": str(entry.get("username")), "password": str(entry.get("password"))}
    registry, user = (
        env.get("CUSTOM_ENV_CI_REGISTRY", ""),
        env.get("CUSTOM_ENV_CI_REGISTRY_USER", ""),
    )
    password = env.get("CUSTOM_ENV_CI_REGISTRY_PASSWORD", "")
    if registry and user and password and _host(registry) == host:
        return {"username": user, "password": password}
    return None


def pull_missing(
    client: Any, reference: str, auth: Auth | None, say: Callable[[str], None]
) -> None:
    """``POST /libpod/images/pull?policy=missing``: pull ``reference`` unless present.
    One line for a failure (the registry's own words)."""
    headers = {}
    if auth:
        headers["X-Registry-Auth"] = base64.urlsafe_b64encode(json.dumps(auth).encode()).decode()
    params = {"reference": reference, "policy": "missing", "quiet": True}
    response = client.api.post("/images/pull", params=params, headers=headers, stream=True)
    response.raise_for_status()
    for line in response.iter_lines():
        if not line:
            continue
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("error"):
            first = str(message["error"]).splitlines()[0]
            raise SystemFailure(f"pulling {reference} failed: {first}")
        if isinstance(message, dict) and message.get("id"):
            say(f"Using image {reference} ({str(message['id'])[:12]})")


def maintained_image(client: Any, reference: str) -> str | None:
    """``localhost/NAME:latest`` when ``reference`` is a bare NAME (no registry, path,
    tag or digest) and that image is the maintained NAME; else None."""
    if not reference or any(c in reference for c in "/:@"):
        return None
    candidate = f"{layout.MAINTAINED_PREFIX}{reference}:latest"
    try:
        labels = client.images.get(candidate).labels or {}
    except (NotFound, ImageNotFound):  # podman-py: not a NotFound
        return None
    return candidate if labels.get(layout.MAINTAINED_LABEL) == reference else None


def ensure_job_image(
    client: Any, reference: str, env: Mapping[str, str], say: Callable[[str], None]
) -> None:
    """The job (or a service's) image, pulled with its credentials when absent."""
    if client.images.exists(reference):
        return
    auth = credentials(reference, env)
    say(f"Pulling {reference}" + (" (with credentials)" if auth else ""))
    pull_missing(client, reference, auth, say)


def ensure_helper_image(
    client: Any,
    env: Mapping[str, str],
    override: str | None,
    say: Callable[[str], None],
    archive: Path | None = None,
) -> str:
    """The helper image's reference, present in the nested storage."""
    if override:
        ensure_job_image(client, override, env, say)
        return override
    name = helper_image(env.get("CUSTOM_ENV_CI_RUNNER_VERSION", ""))
    if client.images.exists(name):
        return name
    path = archive or helper_archive()
    if path.is_file():
        say(f"Loading the helper image from {path}")
        loaded = list(client.images.load(data=path.read_bytes()))
        if not loaded:
            raise SystemFailure(f"{path} holds no image: rebuild the pipglr image")
        repo, _, tag = name.rpartition(":")
        loaded[0].tag(repo, tag)
        return name
    try:
        ensure_job_image(client, name, env, say)
    except NotFound:
        raise SystemFailure(f"no helper image {name} and no {path}") from None
    return name
