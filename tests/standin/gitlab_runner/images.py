"""Pull policies and pulls (executors/docker/internal/pull/manager.go ``manager``,
common/config.go ``GetPullPolicies``); registry credentials: :mod:`.registryauth`."""

from __future__ import annotations

import re
from typing import Any

from .buildlog import BuildLogger
from .clientconfig import AuthConfig, PathTraversal
from .dockerapi import DockerClient, DockerError
from .dockerconfig import DockerConfig
from .errors import CONFIGURATION_ERROR, IMAGE_PULL_FAILURE, BuildError
from .pullpolicy import effective_pull_policies
from .registryauth import Resolver, encode_config

#: docker api/types/registry ``AuthHeader``.
AUTH_HEADER = "X-Registry-Auth"


class ImageError(Exception):
    """A pull that failed without a ``BuildError`` inside (common/build.go
    ``retryCreateExecutor`` retries the preparation then)."""


def split_docker_domain(name: str) -> tuple[str, str]:
    """distribution/reference normalize.go ``splitDockerDomain``."""
    first, slash, rest = name.partition("/")
    if not slash:
        return "docker.io", "library/" + name
    if first == "localhost":
        domain, remote = first, rest
    elif first == "index.docker.io":
        domain, remote = "docker.io", rest
    elif any(c in first for c in ".:") or first.lower() != first:
        domain, remote = first, rest
    else:
        domain, remote = "docker.io", name
    if domain == "docker.io" and "/" not in remote:
        remote = "library/" + remote
    return domain, remote


def split_reference(ref: str) -> tuple[str, str]:
    """The Go client's ``ImagePull`` query (docker client v28.5.2 image_pull.go):
    ``ParseNormalizedNamed(ref).Name()`` and the digest, else the tag (``latest``)."""
    if re.fullmatch("[a-f0-9]{64}", ref):
        raise DockerError(
            0, f"invalid repository name ({ref}), cannot specify 64-byte hexadecimal strings"
        )
    name, _, digest = ref.partition("@")
    tag = ""
    if ":" in name.rsplit("/", 1)[-1]:
        name, tag = name.rsplit(":", 1)
    domain, remote = split_docker_domain(name)
    if remote.lower() != remote:
        raise DockerError(
            0, f"invalid reference format: repository name ({remote}) must be lowercase"
        )
    return f"{domain}/{remote}", digest or tag or "latest"


class PullManager:
    """pull/manager.go: inspect, pull per policy, fall back through a policy list."""

    def __init__(
        self,
        client: DockerClient,
        logger: BuildLogger,
        policies: list[str],
        auth: Resolver | None = None,
        docker: DockerConfig | None = None,
    ) -> None:
        self.client, self.logger, self.config_policies = client, logger, policies
        self.auth = auth or Resolver("", [])
        #: ``[runners.docker]``: its allowed_pull_policies limit every pull (pullpolicy.py)
        self.docker = docker
        self.used: dict[str, str] = {}

    def inspect(self, name: str) -> dict[str, Any] | None:
        """``ImageInspectWithRaw``: ``GET /images/NAME/json``; ``None`` when missing."""
        try:
            found = self.client.call("GET", f"/images/{name}/json")
        except DockerError as exc:
            if exc.not_found:
                return None
            raise
        return found if isinstance(found, dict) else None

    def get_image(self, name: str, job_policies: list[str] | None = None) -> dict[str, Any]:
        """``GetDockerImage``: the job's ``pull_policy`` if any, else the config's."""
        policies = list(job_policies or []) or self.config_policies
        for policy in policies:
            if policy not in ("always", "if-not-present", "never"):
                raise BuildError(
                    f'invalid pull policy for image "{name}": {policy}', CONFIGURATION_ERROR
                )
        if self.docker is not None:
            policies = effective_pull_policies(self.docker, name, job_policies)
        self.logger.println(
            f"Using effective pull policy of [{' '.join(policies)}] for container {name}"
        )
        error: Exception | None = None
        for attempt, policy in enumerate(policies, start=1):
            if attempt > 1:
                self.logger.infoln(f'Attempt #{attempt}: Trying "{policy}" pull policy')
            try:
                image = self._with_policy(name, policy)
            except (DockerError, BuildError, PathTraversal) as exc:
                error = exc
                self.logger.warningln(f'Failed to pull image with policy "{policy}": {exc}')
                continue
            self._mark_used(name, image)
            return image
        message = (
            f'failed to pull image "{name}" with specified policies [{" ".join(policies)}]: {error}'
        )
        if isinstance(error, PathTraversal):
            raise ImageError(message) from error
        raise BuildError(message, IMAGE_PULL_FAILURE)

    def _with_policy(self, name: str, policy: str) -> dict[str, Any]:
        """``getImageUsingPullPolicy``."""
        self.logger.debugln("Looking for image", name, "...")
        existing = self.inspect(name)
        if existing is not None and self.used.get(name) == existing.get("Id"):
            return existing
        if policy == "never":
            if existing is None:
                raise DockerError(404, f"No such image: {name}")
            return existing
        if existing is not None:
            if existing.get("Id") == name:
                return existing
            if policy == "if-not-present":
                self.logger.println(
                    f'Using locally found image version due to "{policy}" pull policy'
                )
                return existing
        return self.pull(name, self.resolve_auth(name))

    def resolve_auth(self, name: str) -> AuthConfig | None:
        """``resolveAuthConfigForImage``: the credentials for ``name`` and their source
        in the trace; raises :class:`PathTraversal` as upstream does."""
        info = self.auth.config_for_image(name, self.logger)
        if info is None:
            self.logger.debugln(f"No credentials found for {name}")
            return None
        self.logger.println(f"Authenticating with credentials from {info.source}")
        self.logger.debugln(
            f"Using {info.auth.username} to connect to {info.auth.serveraddress} "
            f"in order to resolve {name}..."
        )
        return info.auth

    def pull(self, name: str, auth: AuthConfig | None = None) -> dict[str, Any]:
        """``pullDockerImage``: ``POST /images/create?fromImage=...&tag=...`` (streamed)
        with ``X-Registry-Auth`` always set, empty without credentials (the Go client's
        ``tryImageCreate`` sends ``RegistryAuth`` as it is)."""
        self.logger.println(f"Pulling docker image {name} ...")
        headers = {AUTH_HEADER: encode_config(auth)}
        try:
            image, tag = split_reference(name if re.search("[:@]", name) else name + ":latest")
            query = {"fromImage": image, "tag": tag}
            for message in self.client.stream("POST", "/images/create", query, headers=headers):
                self.logger.debugln(message.get("status", ""), message.get("progress", ""))
        except DockerError as exc:
            raise BuildError(str(exc), IMAGE_PULL_FAILURE) from exc
        found = self.inspect(name)
        if found is None:
            raise BuildError(f"No such image: {name}", IMAGE_PULL_FAILURE)
        return found

    def _mark_used(self, name: str, image: dict[str, Any]) -> None:
        """``markImageAsUsed``: the "Using docker image ..." line."""
        image_id = str(image.get("Id", ""))
        self.used[name] = image_id
        if name == image_id:
            return
        digests = image.get("RepoDigests") or []
        suffix = f" with digest {digests[0]}" if digests else ""
        self.logger.println(f"Using docker image {image_id} for {name}{suffix} ...")
