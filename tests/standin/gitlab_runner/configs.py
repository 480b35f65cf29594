"""What the docker executor puts into its containers' create bodies
(executors/docker/docker.go ``createContainerConfig``, ``overwriteEntrypoint``,
``getBuildContainerUser``,
``createHostConfig``, ``createHostConfigForService``, ``createServiceContainerConfig``,
``getServicesDevices``, ``parseDeviceString``, ``bindContainerDevices``,
``createHostConfigForServiceHealthCheck``, ``networkConfig``/``networkConfigLegacy``;
executors/docker/services.go ``createConfigForServiceHealthCheckContainer``;
executors/docker/internal/labels/labels.go), serialised field for field as the Go
client does by :mod:`.gotypes`.
"""

from __future__ import annotations

from typing import Any

from . import gotypes
from .allowed import BadPattern, match
from .buildinfo import BuildInfo, go_duration
from .buildlog import BuildLogger
from .dockerconfig import DockerConfig
from .jobspec import Image

LABEL_PREFIX = "com.gitlab.gitlab-runner"
#: docker.go ``neverRestartPolicy``.
NEVER_RESTART = {"Name": "no", "MaximumRetryCount": 0}
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
    """docker.go ``prepareContainerLabels``: plus ``[runners.docker] container_labels``,
    expanded with the job's variables (``Build.Variables``, not the runner's)."""
    found = labels(info, other)
    variables = info.job_variables()
    for key, value in info.runner.docker.container_labels.items():
        found[key] = variables.expand_value(value)
    return found


def is_user_defined(network_mode: str) -> bool:
    """container.NetworkMode ``IsUserDefined``."""
    return network_mode not in BUILTIN_NETWORKS and not network_mode.startswith("container:")


def network_config(network_mode: str, aliases: list[str], legacy: bool, mac: str) -> dict[str, Any]:
    """``networkConfig`` (API >= 1.44) / ``networkConfigLegacy`` (older, e.g. podman's 1.41)."""
    endpoint = gotypes.endpoint_settings
    if legacy:
        if not is_user_defined(network_mode):
            return gotypes.networking_config(None)
        return gotypes.networking_config({network_mode: endpoint(Aliases=aliases)})
    if not network_mode:
        return gotypes.networking_config({"default": endpoint(MacAddress=mac)})
    aliased = {"Aliases": aliases} if is_user_defined(network_mode) else {}
    return gotypes.networking_config({network_mode: endpoint(MacAddress=mac, **aliased)})


def overwrite_entrypoint(
    logger: BuildLogger, docker: DockerConfig, image: Image
) -> list[str] | None:
    """``overwriteEntrypoint``: the image's entrypoint unless
    ``disable_entrypoint_overwrite`` (then a warning)."""
    if image.entrypoint:
        if not docker.disable_entrypoint_overwrite:
            return list(image.entrypoint)
        logger.warningln("Entrypoint override disabled")
    return None


def build_user(info: BuildInfo, image: Image) -> str:
    """``getBuildContainerUser``: ``[runners.docker] user``, else the job image's
    ``docker:user``; refused unless ``IsUserAllowed``."""
    docker = info.runner.docker
    user = docker.user or info.all_variables().expand_value(image.docker_user)
    if not docker.is_user_allowed(user):
        allowed = " ".join(docker.allowed_users or [])
        raise ValueError(f'user "{user}" is not an allowed user: [{allowed}]')
    return user


def container_config(
    info: BuildInfo,
    container_type: str,
    image_id: str,
    cmd: list[str],
    entrypoint: list[str] | None,
    user: str = "",
    legacy: bool = True,
) -> dict[str, Any]:
    """``createContainerConfig``: stdin open once, attached, no TTY, all job variables;
    ``User`` only for the build container; ``MacAddress`` below API 1.44."""
    docker = info.runner.docker
    variables = info.all_variables()
    return gotypes.config(
        Image=image_id,
        Hostname=docker.hostname or info.project_unique_name(),
        Cmd=cmd,
        Labels=container_labels(info, {"type": container_type}),
        Tty=False,
        AttachStdin=True,
        AttachStdout=True,
        AttachStderr=True,
        OpenStdin=True,
        StdinOnce=True,
        Entrypoint=entrypoint or None,
        Env=[f"{v.key}={variables.get(v.key) if v.file else v.value}" for v in variables],
        User=user,
        MacAddress=docker.mac_address if legacy else "",
    )


def parse_device(spec: str) -> dict[str, str]:
    """``parseDeviceString``: ``host[:container[:permissions]]``, default ``rwm``."""
    parts = spec.split(":")
    if len(parts) > 3:
        raise ValueError("too many colons")
    return {
        "PathOnHost": parts[0],
        "PathInContainer": parts[1] if len(parts) > 1 else parts[0],
        "CgroupPermissions": parts[2] if len(parts) > 2 else "rwm",
    }


def bind_devices(devices: list[str] | None) -> list[dict[str, str]]:
    """``bindContainerDevices``: always a list (``[]`` without devices)."""
    mapping = []
    for spec in devices or []:
        try:
            mapping.append(parse_device(spec))
        except ValueError as exc:
            raise ValueError(f'failed to parse device string "{spec}": {exc}') from exc
    return mapping


def services_devices(docker: DockerConfig, image: str) -> list[dict[str, str]] | None:
    """``getServicesDevices``: the devices of every ``services_devices`` glob matching
    the service image (nil when none matches)."""
    found: list[dict[str, str]] | None = None
    for glob, specs in docker.services_devices.items():
        try:
            matched = match(glob, image)
        except BadPattern as exc:
            raise ValueError(f"invalid service device image pattern: {glob}: {exc}") from exc
        if matched:
            found = [*(found or []), *bind_devices(specs)]
    return found


def host_config(
    docker: DockerConfig,
    *,
    network_mode: str,
    binds: list[str],
    links: list[str],
    devices: list[dict[str, str]] | None,
    privileged_image: bool,
    use_init: bool,
    log_config: dict[str, Any],
) -> dict[str, Any]:
    """``createHostConfig`` (build and predefined containers); ``use_init`` only for
    the build container (FF_USE_INIT_WITH_DOCKER_EXECUTOR)."""
    nano_cpus = docker.nano_cpus()
    if docker.isolation.lower() not in ("", "default"):
        # hostconfig_unix.go Isolation.IsValid: only the default on Linux
        raise ValueError(
            f'the isolation value "{docker.isolation}" is not valid. the valid values are: '
            "'process', 'hyperv', 'default' and an empty string"
        )
    ulimits = docker.ulimits()
    extra_hosts = docker.extra_hosts
    if links or extra_hosts is not None:
        extra_hosts = [*(extra_hosts or []), *links]
    return gotypes.host_config(
        Memory=docker.memory_bytes(docker.memory, "memory"),
        MemorySwap=docker.memory_bytes(docker.memory_swap, "memory_swap"),
        MemoryReservation=docker.memory_bytes(docker.memory_reservation, "memory_reservation"),
        CgroupParent=docker.cgroup_parent,
        CpusetCpus=docker.cpuset_cpus,
        CpusetMems=docker.cpuset_mems,
        CpuShares=docker.cpu_shares,
        NanoCpus=nano_cpus,
        Devices=devices,
        OomKillDisable=docker.oom_kill_disable,
        DeviceCgroupRules=docker.device_cgroup_rules,
        Ulimits=ulimits,
        Dns=docker.dns,
        DnsSearch=docker.dns_search,
        Runtime=docker.runtime,
        Privileged=docker.privileged and privileged_image,
        GroupAdd=docker.group_add,
        UsernsMode=docker.userns_mode,
        CapAdd=docker.cap_add,
        CapDrop=docker.cap_drop,
        SecurityOpt=docker.security_opt,
        RestartPolicy=dict(NEVER_RESTART),
        ExtraHosts=extra_hosts,
        NetworkMode=network_mode,
        IpcMode=docker.ipcmode,
        Links=docker.links,
        Binds=binds,
        OomScoreAdj=docker.oom_score_adjust,
        ShmSize=docker.shm_size,
        Isolation=docker.isolation,
        VolumeDriver=docker.volume_driver,
        VolumesFrom=docker.volumes_from,
        LogConfig=log_config,
        Tmpfs=docker.tmpfs,
        Sysctls=docker.sysctls,
        Init=True if use_init else None,
    )


def service_host_config(
    docker: DockerConfig,
    *,
    network_mode: str,
    binds: list[str],
    privileged_image: bool,
    devices: list[dict[str, str]] | None,
    use_init: bool,
    log_config: dict[str, Any],
) -> dict[str, Any]:
    """``createHostConfigForService``: the ``service_*`` resources, ``services_tmpfs``,
    ``services_security_opt``; ``services_privileged`` overrides ``privileged``; no
    capabilities, ulimits, sysctls or group_add."""
    try:
        nano_cpus = docker.service_nano_cpus()
    except ValueError as exc:
        raise ValueError(f"service nano cpus: {exc}") from exc
    privileged = docker.privileged
    if docker.services_privileged is not None:
        privileged = docker.services_privileged
    memory = docker.memory_bytes
    return gotypes.host_config(
        Memory=memory(docker.service_memory, "service_memory"),
        MemorySwap=memory(docker.service_memory_swap, "service_memory_swap"),
        MemoryReservation=memory(docker.service_memory_reservation, "service_memory_reservation"),
        CgroupParent=docker.service_cgroup_parent,
        CpusetCpus=docker.service_cpuset_cpus,
        CpuShares=docker.service_cpu_shares,
        NanoCpus=nano_cpus,
        Devices=devices,
        Dns=docker.dns,
        DnsSearch=docker.dns_search,
        RestartPolicy=dict(NEVER_RESTART),
        ExtraHosts=docker.extra_hosts,
        Privileged=privileged and privileged_image,
        SecurityOpt=docker.services_security_opt,
        Runtime=docker.runtime,
        UsernsMode=docker.userns_mode,
        NetworkMode=network_mode,
        Binds=binds,
        ShmSize=docker.shm_size,
        Tmpfs=docker.services_tmpfs,
        LogConfig=log_config,
        Init=True if use_init else None,
    )


def service_container_config(
    labels_: dict[str, str], image_id: str, env: list[str], definition: Image, user: str,
    entrypoint: list[str] | None,
) -> dict[str, Any]:  # fmt: skip
    """``createServiceContainerConfig``: ``Cmd`` only when the service has a command."""
    return gotypes.config(
        Image=image_id,
        Labels=labels_,
        Env=env,
        Cmd=definition.command or None,
        Entrypoint=entrypoint,
        User=user,
    )


def health_check_bodies(
    info: BuildInfo,
    service_id: str,
    ips: list[str],
    helper_id: str,
    env: list[str],
    network_mode: str,
    log_config: dict[str, Any],
) -> dict[str, Any]:
    """``createConfigForServiceHealthCheckContainer`` and
    ``createHostConfigForServiceHealthCheck`` (ExtraHosts: the short id at the service's
    last IP), created without a NetworkingConfig."""
    extra_hosts = [f"{service_id[:12]}:{ips[-1]}"] if ips else None
    config = gotypes.config(
        Cmd=["gitlab-runner-helper", "health-check"],
        Image=helper_id,
        Labels=labels(info, {"type": "wait", "wait": service_id}),
        Env=env,
    )
    host = gotypes.host_config(
        RestartPolicy=dict(NEVER_RESTART),
        ExtraHosts=extra_hosts,
        NetworkMode=network_mode,
        LogConfig=log_config,
    )
    return gotypes.create_request(config, host, None)
