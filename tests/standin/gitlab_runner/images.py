"""Pull policies (executors/docker/internal/pull/manager.go ``manager``,
common/config.go ``GetPullPolicies``)."""

from __future__ import annotations

import re
from typing import Any

from .buildlog import BuildLogger
from .dockerapi import DockerClient, DockerError
from .dockerconfig import DockerConfig
from .errors import CONFIGURATION_ERROR, IMAGE_PULL_FAILURE, BuildError
from .pullpolicy import effective_pull_policies


def split_reference(ref: str) -> tuple[str, str]:
    """The Go client's ``ImagePull`` query: repository and tag (or digest)."""
    if "@" in ref:
        name, digest = ref.split("@", 1)
        return name, digest
    if ":" in ref.rsplit("/", 1)[-1]:
        name, tag = ref.rsplit(":", 1)
        return name, tag
    return ref, "latest"


class PullManager:
    """pull/manager.go: inspect, pull per policy, fall back through a policy list."""

    def __init__(
        self,
        client: DockerClient,
        logger: BuildLogger,
        policies: list[str],
        docker: DockerConfig | None = None,
    ) -> None:
        self.client, self.logger, self.config_policies = client, logger, policies
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
            except (DockerError, BuildError) as exc:
                error = exc
                self.logger.warningln(f'Failed to pull image with policy "{policy}": {exc}')
                continue
            self._mark_used(name, image)
            return image
        raise BuildError(
            f'failed to pull image "{name}" with specified policies '
            f"[{' '.join(policies)}]: {error}",
            IMAGE_PULL_FAILURE,
        )

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
        return self.pull(name)

    def pull(self, name: str) -> dict[str, Any]:
        """``pullDockerImage``: ``POST /images/create?fromImage=...&tag=...`` (streamed)."""
        self.logger.println(f"Pulling docker image {name} ...")
        image, tag = split_reference(name if re.search("[:@]", name) else name + ":latest")
        query = {"fromImage": image, "tag": tag}
        try:
            for message in self.client.stream("POST", "/images/create", query):
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
