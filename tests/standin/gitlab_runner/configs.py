"""Create bodies of the docker executor's containers (executors/docker/docker.go
``createContainerConfig``, ``createHostConfig``, ``createHostConfigForService``,
``createServiceContainerConfig``, ``networkConfig``/``networkConfigLegacy``;
executors/docker/internal/labels/labels.go).

The essential fields are sent with the values gitlab-runner sends; the Go client also
serialises the zero values of every other field, which engines treat as unset.
"""

from __future__ import annotations

from typing import Any

from .buildinfo import BuildInfo, go_duration
from .config import DockerConfig

LABEL_PREFIX = "com.gitlab.gitlab-runner"
NEVER_RESTART = {"Name": "no", "MaximumRetryCount": 0}
LOG_CONFIG = {"Type": "json-file", "Config": {}}
#: container.NetworkMode values that are not user-defined networks.
BUILTIN_NETWORKS = ("", "default", "bridge", "host", "none")


def labels(info: BuildInfo, other: dict[str, str] | None = None) -> dict[str, str]:
    """labels.go ``Labels``: the job's labels plus ``other`` under the prefix."""
    job = info.job
    found = {
        f"{LABEL_PREFIX}.job.id": str(job.id),
        f"{LABEL_PREFIX}.job.url": job.job_url(),
        f"{LABEL_PREFIX}.job.sha": job.sha,
        f"{LABEL_PREFIX}.job.before_sha": job.before_sha,
        f"{LABEL_PREFIX}.job.ref": job.ref,
        f"{LABEL_PREFIX}.job.timeout": go_duration(info.timeout()),
        f"{LABEL_PREFIX}.project.id": str(job.project_id),
        f"{LABEL_PREFIX}.project.runner_id": str(info.project_runner_id),
        f"{LABEL_PREFIX}.pipeline.id": info.all_variables().value("CI_PIPELINE_ID"),
        f"{LABEL_PREFIX}.runner.id": info.short_token,
        f"{LABEL_PREFIX}.runner.local_id": str(info.runner_id),
        f"{LABEL_PREFIX}.runner.system_id": info.system_id,
        f"{LABEL_PREFIX}.managed": "true",
    }
    for key, value in (other or {}).items():
        found[f"{LABEL_PREFIX}.{key}"] = value
    return found


def container_labels(info: BuildInfo, other: dict[str, str]) -> dict[str, str]:
    """docker.go ``prepareContainerLabels``: plus ``[runners.docker] container_labels``."""
    found = labels(info, other)
    variables = info.all_variables()
    for key, value in info.runner.docker.container_labels.items():
        found[key] = variables.expand_value(value)
    return found


def is_user_defined(network_mode: str) -> bool:
    """container.NetworkMode ``IsUserDefined``."""
    return network_mode not in BUILTIN_NETWORKS and not network_mode.startswith("container:")


def network_config(network_mode: str, aliases: list[str], legacy: bool, mac: str) -> dict[str, Any]:
    """``networkConfig`` (API >= 1.44) / ``networkConfigLegacy`` (older, e.g. podman's 1.41)."""
    if legacy:
        if not is_user_defined(network_mode):
            return {"EndpointsConfig": None}
        return {"EndpointsConfig": {network_mode: {"Aliases": aliases}}}
    if not network_mode:
        return {"EndpointsConfig": {"default": {"MacAddress": mac}}}
    endpoint: dict[str, Any] = {"MacAddress": mac}
    if is_user_defined(network_mode):
        endpoint["Aliases"] = aliases
    return {"EndpointsConfig": {network_mode: endpoint}}


def container_config(
    info: BuildInfo,
    container_type: str,
    image_id: str,
    cmd: list[str],
    entrypoint: list[str] | None,
    user: str = "",
    legacy: bool = True,
) -> dict[str, Any]:
    """``createContainerConfig``: stdin open once, attached, no TTY, all job variables."""
    docker = info.runner.docker
    variables = info.all_variables()
    config: dict[str, Any] = {
        "Image": image_id,
        "Hostname": docker.hostname or info.project_unique_name(),
        "Cmd": cmd,
        "Labels": container_labels(info, {"type": container_type}),
        "Tty": False,
        "AttachStdin": True,
        "AttachStdout": True,
        "AttachStderr": True,
        "OpenStdin": True,
        "StdinOnce": True,
        "Entrypoint": entrypoint or None,
        "Env": [f"{v.key}={variables.get(v.key) if v.file else v.value}" for v in variables],
        "User": user,
    }
    if legacy:
        config["MacAddress"] = docker.mac_address
    return config


def host_config(
    docker: DockerConfig,
    *,
    network_mode: str,
    binds: list[str],
    extra_hosts: list[str],
    privileged: bool,
    use_init: bool = False,
) -> dict[str, Any]:
    """``createHostConfig`` (build and predefined containers)."""
    return {
        "Privileged": privileged,
        "RestartPolicy": NEVER_RESTART,
        "ExtraHosts": [*docker.extra_hosts, *extra_hosts] or None,
        "NetworkMode": network_mode,
        "Binds": binds,
        "LogConfig": LOG_CONFIG,
        "ShmSize": docker.shm_size,
        "Dns": docker.dns or None,
        "DnsSearch": docker.dns_search or None,
        "CapAdd": docker.cap_add or None,
        "CapDrop": docker.cap_drop or None,
        "SecurityOpt": docker.security_opt or None,
        "Runtime": docker.runtime,
        "VolumeDriver": docker.volume_driver,
        "Devices": [_device(d) for d in docker.devices] or None,
        "Init": True if use_init else None,
    }


def _device(spec: str) -> dict[str, str]:
    """docker.go ``parseDeviceString``: ``host[:container[:permissions]]``."""
    parts = spec.split(":")
    return {
        "PathOnHost": parts[0],
        "PathInContainer": parts[1] if len(parts) > 1 else parts[0],
        "CgroupPermissions": parts[2] if len(parts) > 2 else "rwm",
    }


def service_host_config(
    docker: DockerConfig, *, network_mode: str, binds: list[str], use_init: bool = False
) -> dict[str, Any]:
    """``createHostConfigForService``: ``services_privileged`` overrides ``privileged``."""
    privileged = docker.privileged
    if docker.services_privileged is not None:
        privileged = docker.services_privileged
    return {
        "Privileged": privileged,
        "RestartPolicy": NEVER_RESTART,
        "ExtraHosts": docker.extra_hosts or None,
        "NetworkMode": network_mode,
        "Binds": binds,
        "LogConfig": LOG_CONFIG,
        "ShmSize": docker.shm_size,
        "Dns": docker.dns or None,
        "DnsSearch": docker.dns_search or None,
        "Runtime": docker.runtime,
        "Init": True if use_init else None,
    }
