"""Which ``[[runners]]`` keys the stand-in replays, which it may ignore, and the guard
that fails a job on any other one (common/config.go ``RunnerConfig``,
``RunnerSettings``, ``RunnerCredentials``, ``DockerConfig``, ``Service``).

gitlab-runner decodes every key of its structs and silently ignores unknown ones. The
stand-in must not silently drop a key that would change what the real runner sends
(to the Docker API, to GitLab or into a job script), or a test would pass for the wrong
reason. So every key in a runner's table is either

* **modelled**: replayed (the value column names where), or
* **irrelevant**: the real docker executor never reads it (why in the value column), or
* anything else, including a key the stand-in does not know: allowed only at its Go
  zero value (``""``, ``0``, ``false``, an empty list or table, or a table of such),
  which upstream treats like an absent key. Set to anything else, the job fails as a
  runner system failure naming the key (:func:`check`, run first in ``Prepare``).
"""

from __future__ import annotations

from typing import Any

from .errors import RUNNER_SYSTEM_FAILURE, BuildError

_CREDENTIALS = "network.py, rotation.py (RunnerCredentials)"
_HOST_CONFIG = "configs.py host_config (createHostConfig)"
_SERVICE_HOST = "configs.py service_host_config (createHostConfigForService)"

#: ``[[runners]]`` keys the stand-in replays.
MODELLED_RUNNER_KEYS: dict[str, str] = {
    "name": "config.py; trace header, labels",
    "url": _CREDENTIALS,
    "id": _CREDENTIALS,
    "token": _CREDENTIALS,
    "token_obtained_at": _CREDENTIALS,
    "token_expires_at": _CREDENTIALS,
    "executor": "executors.py PROVIDERS (docker, custom); multi.py processRunner",
    "limit": "multi.py BuildsHelper.acquire_build",
    "request_concurrency": "multi.py BuildsHelper.acquire_request",
    "output_limit": "trace.py (bytesize limit)",
    "strict_check_interval": "multi.py requeueRunner",
    "environment": "buildinfo.py (job variables)",
    "tls-ca-file": "tlsca.py (addTLSCA: https trust; buildCAChain: CI_SERVER_TLS_CA_FILE)",
    "builds_dir": "buildinfo.py root_dir",
    "cache_dir": "buildinfo.py cache_dir",
    "feature_flags": "buildinfo.py feature_flags",
    "docker": "the [runners.docker] table below",
}

#: ``[[runners]]`` keys the docker executor never reads: the sections of the other
#: executors (a docker runner never reads them; a custom runner: customconfig.py),
#: and Prometheus-only settings.
IRRELEVANT_RUNNER_KEYS: dict[str, str] = {
    "ssh": "SSH executor only (executors/ssh)",
    "parallels": "Parallels executor only",
    "virtualbox": "VirtualBox executor only",
    "machine": "docker+machine executor only (executors/docker/machine)",
    "kubernetes": "Kubernetes executor only",
    "custom": "Custom executor only",
    "autoscaler": "docker-autoscaler/instance executors only (fleeting)",
    "instance": "instance/docker-autoscaler executors only (VM isolation)",
    "monitoring": "Prometheus job-queue metrics only (commands/builds_helper.go)",
}

#: ``[runners.docker]`` keys the stand-in replays.
MODELLED_DOCKER_KEYS: dict[str, str] = {
    **dict.fromkeys(
        (
            "memory",
            "memory_swap",
            "memory_reservation",
            "cgroup_parent",
            "cpuset_cpus",
            "cpuset_mems",
            "cpus",
            "cpu_shares",
            "dns",
            "dns_search",
            "privileged",
            "allowed_privileged_images",
            "group_add",
            "userns_mode",
            "cap_add",
            "cap_drop",
            "oom_kill_disable",
            "oom_score_adjust",
            "security_opt",
            "devices",
            "device_cgroup_rules",
            "extra_hosts",
            "volumes_from",
            "ipcmode",
            "links",
            "isolation",
            "shm_size",
            "tmpfs",
            "sysctls",
            "ulimit",
            "runtime",
            "volume_driver",
            "log_options",
        ),
        _HOST_CONFIG,
    ),
    **dict.fromkeys(
        (
            "services_privileged",
            "allowed_privileged_services",
            "services_security_opt",
            "services_devices",
            "service_memory",
            "service_memory_swap",
            "service_memory_reservation",
            "service_cgroup_parent",
            "service_cpuset_cpus",
            "service_cpus",
            "service_cpu_shares",
            "services_tmpfs",
        ),
        _SERVICE_HOST,
    ),
    "host": "executor.py connectDocker (unix socket or tcp)",
    "hostname": "configs.py container_config",
    "image": "executor.py expandImageName",
    "user": "configs.py build_user (getBuildContainerUser)",
    "allowed_users": "configs.py build_user (IsUserAllowed)",
    "disable_entrypoint_overwrite": "configs.py overwrite_entrypoint",
    "mac_address": "configs.py container_config / network_config",
    "network_mode": "dependencies.py create_network",
    "network_mtu": "dependencies.py create_network",
    "enable_ipv6": "dependencies.py create_network",
    "volumes": "dependencies.py create_volumes",
    "cache_dir": "volumes.py (host-based cache volumes)",
    "disable_cache": "volumes.py (temporary cache volumes)",
    "volume_driver_ops": "volumes.py (DriverOpts)",
    "pull_policy": "images.py PullManager",
    "allowed_pull_policies": "pullpolicy.py effective_pull_policies",
    "allowed_images": "allowed.py verify_allowed_image (expandImageName)",
    "allowed_services": "services.py definitions (getServicesDefinitions)",
    "services": "services.py definitions (GetExpandedServices)",
    "services_limit": "services.py definitions (GetServicesLimit)",
    "wait_for_services_timeout": "services.py waitForServices",
    "helper_image": "helper.py (getHelperImage)",
    "container_labels": "configs.py container_labels",
}

#: ``[[runners.docker.services]]`` keys (common/config.go ``Service``), all replayed.
MODELLED_SERVICE_KEYS = ("name", "alias", "command", "entrypoint", "environment")

#: ``[runners.docker]`` keys the docker executor never reads: none. Every
#: ``DockerConfig`` field changes a request or the connection (``tls_verify``,
#: ``tls_cert_path``: TLS to the engine, which the stand-in does not replay, so they
#: pass only at their zero value like ``gpus``, ``volume_keep``, ``helper_image_flavor``).
IRRELEVANT_DOCKER_KEYS: dict[str, str] = {}


def is_zero(value: Any) -> bool:
    """A Go zero value: upstream decodes it as if the key were absent."""
    if isinstance(value, dict):
        return all(is_zero(v) for v in value.values())
    return value is False or value == 0 or value in ("", [])


def unreplayed(raw: dict[str, Any]) -> list[str]:
    """The dotted names of the keys of one ``[[runners]]`` table the stand-in neither
    replays nor may ignore, set to a value other than their zero value."""
    found: list[str] = []
    for key, value in raw.items():
        if key in IRRELEVANT_RUNNER_KEYS:
            continue
        if key not in MODELLED_RUNNER_KEYS and not is_zero(value):
            found.append(f"runners.{key}")
    docker = raw.get("docker")
    for key, value in (docker if isinstance(docker, dict) else {}).items():
        if key in IRRELEVANT_DOCKER_KEYS:
            continue
        if key not in MODELLED_DOCKER_KEYS and not is_zero(value):
            found.append(f"runners.docker.{key}")
        if key == "services" and isinstance(value, list):
            for service in value:
                for name, setting in (service if isinstance(service, dict) else {}).items():
                    if name not in MODELLED_SERVICE_KEYS and not is_zero(setting):
                        found.append(f"runners.docker.services.{name}")
    return found


def message(keys: list[str]) -> str:
    """The trace line of a job refused for ``keys``."""
    names = ", ".join(f'"{key}"' for key in keys)
    return (
        f"config.toml sets {names}, which the gitlab-runner stand-in does not replay "
        "(tests/standin/gitlab_runner/configkeys.py): the job would not run as "
        "gitlab-runner v18.11.4 runs it"
    )


def check(raw: dict[str, Any]) -> None:
    """Fail the job (runner system failure) when ``raw`` sets a key not replayed."""
    keys = unreplayed(raw)
    if keys:
        raise BuildError(message(keys), RUNNER_SYSTEM_FAILURE)
