"""The pull policies an image is fetched with (executors/docker/internal/pull/manager.go
``GetDockerImage`` → ``getPullPolicies``, common/config.go ``GetAllowedPullPolicies``,
helpers/pull_policies/pull_policies.go ``ComputeEffectivePullPolicies``)."""

from __future__ import annotations

from .dockerconfig import DockerConfig
from .errors import CONFIGURATION_ERROR, BuildError


def _go_list(values: list[str]) -> str:
    """``%v`` of a ``[]DockerPullPolicy``."""
    return "[" + " ".join(values) + "]"


def effective_pull_policies(
    docker: DockerConfig, image: str, job_policies: list[str] | None
) -> list[str]:
    """The job's (``image:pull_policy``) or the runner's policies, limited to the
    allowed ones (``allowed_pull_policies``, else the runner's ``pull_policy``); none
    left is a configuration error naming where the policies came from."""
    policies = list(job_policies or []) or docker.pull_policies()
    allowed = docker.allowed_pull_policies_or_default()
    if not policies:
        return allowed
    if not allowed:
        return policies
    effective = [policy for policy in policies if policy in allowed]
    if effective:
        return effective
    if job_policies:
        source = "GitLab pipeline config"
    elif docker.pull_policy:
        source = "Runner config"
    else:
        source = "Runner config (default)"
    raise BuildError(
        f'invalid pull policy for image "{image}": pull_policy ({_go_list(policies)}) '
        f"defined in {source} is not one of the allowed_pull_policies ({_go_list(allowed)})",
        CONFIGURATION_ERROR,
    )
