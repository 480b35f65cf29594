"""Service containers and the wait-for-service health check (executors/docker/services.go
``createServices``, ``createFromServiceDefinition``, ``waitForServices``,
``runServiceHealthCheckContainer``, ``waitForServiceContainer``; executors/docker/docker.go
``createService``, ``getContainerIPAndExposedPorts``, ``addServiceHealthCheckEnvironment``,
``createHostConfigForServiceHealthCheck``, ``readContainerLogs``;
helpers/container/services/services.go ``SplitNameAndVersion``)."""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .allowed import is_in_allowed_privileged_images, verify_allowed_image
from .buildlog import STDERR, STREAM_EXECUTOR_LEVEL
from .configs import (
    health_check_bodies,
    network_config,
    overwrite_entrypoint,
    service_container_config,
    service_host_config,
    services_devices,
)
from .context import Context, ContextError
from .dockerapi import DockerError
from .dockerconfig import ConfigService
from .dockerexec import remove_container, wait_container
from .errors import BuildError
from .gotypes import create_request
from .jobspec import Image, Variable, Variables
from .scripts import ANSI_RESET, ANSI_YELLOW

if TYPE_CHECKING:
    from .executor import DockerExecutor

DEFAULT_WAIT_FOR_SERVICES_TIMEOUT = 30
_NO_PORT = re.compile(r"^(.*?)(|:[0-9]+)(|/.*)$")


@dataclass
class ServiceMeta:
    """services.go ``Service``."""

    service: str
    version: str
    image_name: str
    aliases: list[str] = field(default_factory=list)


class TooManyServices(Exception):
    """services.go ``tooManyServicesRequestedError``."""

    def __init__(self, requested: int, allowed: int) -> None:
        super().__init__(f"too many services requested: {requested}, only {allowed} allowed")


@dataclass
class ServiceInfo:
    """services.go ``serviceInfo``."""

    id: str
    name: str
    ips: list[str]
    ports: list[int]


def split_name_and_version(description: str) -> ServiceMeta:
    """``SplitNameAndVersion``: ``registry[:port]/path/name[:tag][@digest]``."""
    name, _, digest = description.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = ""
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._/:-]*$", name):
        return ServiceMeta("", "latest", description)
    match = _NO_PORT.match(name)
    assert match is not None
    service = match.group(1) + match.group(3)
    if tag:
        meta = ServiceMeta(service, tag, description)
    elif digest:
        meta = ServiceMeta(service, "@" + digest, description)
    else:
        meta = ServiceMeta(service, "latest", f"{name}:latest")
    meta.aliases.append(service.replace("/", "__"))
    if service.replace("/", "-") != meta.aliases[0]:
        meta.aliases.append(service.replace("/", "-"))
    return meta


def create_services(ex: DockerExecutor) -> list[str]:
    """``createServices``: each service, then the health checks; returns the ``links``
    (``alias:IP`` for ExtraHosts on the default network)."""
    links: dict[str, ServiceInfo] = {}
    services: list[ServiceInfo] = []
    for index, definition in enumerate(definitions(ex)):
        meta = split_name_and_version(definition.name)
        meta.aliases += definition.aliases()
        created: ServiceInfo | None = None
        for link in meta.aliases:
            if link in links:
                ex.logger.warningln("Service", definition.name, "is already created. Ignoring.")
                continue
            if created is None:
                created = _create_service(ex, index, meta, definition)
                services.append(created)
                ex.temporary.append(created.id)
                links[created.id[:12]] = created
            links[link] = created
    _wait_for_services(ex, services)
    return [f"{link}:{ip}" for link, service in links.items() for ip in service.ips]


def config_service_image(service: ConfigService, variables: Variables) -> Image:
    """config.go ``getExpandedServices`` + ``Service.ToImageDefinition``: name and alias
    expanded; each ``KEY=VALUE`` of ``environment`` an internal variable (others are
    dropped, as ``parseVariable`` refuses them)."""
    image = Image(
        name=variables.expand_value(service.name),
        alias=variables.expand_value(service.alias),
        command=list(service.command),
        entrypoint=list(service.entrypoint),
    )
    for entry in service.environment:
        key, sep, value = entry.partition("=")
        if sep:
            image.variables.append(Variable(key, value, public=False, internal=True))
    return image


def definitions(ex: DockerExecutor) -> list[Image]:
    """services.go ``getServicesDefinitions``: ``[[runners.docker.services]]`` first,
    then the job's, each checked against ``allowed_services`` (the configured ones
    always pass), at most ``services_limit``."""
    docker = ex.docker
    variables = ex.info.all_variables()
    found = [config_service_image(s, variables) for s in docker.services]
    internal = [image.name for image in found]
    for service in ex.info.job.services:
        # common/build.go expands the job's service names and aliases up front
        name, alias = variables.expand_value(service.name), variables.expand_value(service.alias)
        verify_allowed_image(ex.logger, name, "services", docker.allowed_services, internal)
        found.append(dataclasses.replace(service, name=name, alias=alias))
    limit = docker.get_services_limit()
    if 0 <= limit < len(found):
        raise TooManyServices(len(found), limit)
    return found


def _create_service(
    ex: DockerExecutor, index: int, meta: ServiceMeta, definition: Image
) -> ServiceInfo:
    """``createService``."""
    if not meta.service:
        raise BuildError(f"invalid service image name: {definition.name}")
    separator = "" if meta.version.startswith("@sha256") else ":"
    ex.logger.println(f"Starting service {meta.service}{separator}{meta.version}...")
    image = ex.pull.get_image(meta.image_name, definition.pull_policy)
    name = ex.container_name(f"{meta.service.replace('/', '__')}-{index}")
    remove_container(ex.client, name)
    # getServiceVariables: the public or internal job variables, then the service's
    public = [v for v in ex.info.all_variables() if v.public or v.internal]
    variables = Variables([*public, *definition.variables]).expand()
    service_labels = ex.service_labels(
        {"type": "service", "service": meta.service, "service.version": meta.version}
    )
    for key, value in ex.docker.container_labels.items():
        # createServiceContainerConfig: Build.Variables (the job's), not all variables
        expanded = ex.info.job_variables().expand_value(value)
        service_labels[f"com.gitlab.gitlab-runner.{key}"] = expanded
    user = ex.info.all_variables().expand_value(definition.docker_user)
    entrypoint = overwrite_entrypoint(ex.logger, ex.docker, definition)
    config = service_container_config(
        service_labels, str(image["Id"]), [f"{v.key}={v.value}" for v in variables],
        definition, user, entrypoint,
    )  # fmt: skip
    host = service_host_config(
        ex.docker,
        network_mode=ex.network_mode,
        binds=ex.volumes_manager.binds,
        privileged_image=is_in_allowed_privileged_images(
            definition.name, ex.docker.allowed_privileged_services
        ),
        devices=services_devices(ex.docker, meta.image_name),
        use_init=ex.info.flag("FF_USE_INIT_WITH_DOCKER_EXECUTOR"),
        log_config=ex.prepared.log_config,
    )
    networking = network_config(ex.network_mode, meta.aliases, ex.legacy_api, ex.docker.mac_address)
    body = create_request(config, host, networking, ex.legacy_api)
    ex.logger.debugln("Creating service container", name, "...")
    created = ex.client.call("POST", "/containers/create", {"name": name}, body=body)
    container_id = str(created["Id"])
    try:
        ex.client.call("POST", f"/containers/{container_id}/start")
    except DockerError:
        ex.temporary.append(container_id)
        raise
    ips, ports = _ip_and_ports(ex, container_id)
    return ServiceInfo(container_id, name, ips, ports)


def _ip_and_ports(ex: DockerExecutor, container_id: str) -> tuple[list[str], list[int]]:
    """``getContainerIPAndExposedPorts``: inspect until the container left "created"."""
    timeout = max(ex.docker.wait_for_services_timeout, DEFAULT_WAIT_FOR_SERVICES_TIMEOUT)
    start = time.monotonic()
    while True:
        if time.monotonic() - start > timeout:
            raise BuildError(f"getting exposed ports: service failed to start after {timeout}s")
        found = ex.client.call("GET", f"/containers/{container_id}/json") or {}
        if (found.get("State") or {}).get("Status") != "created":
            break
        ex.ctx.wait(1.0)
    settings = found.get("NetworkSettings") or {}
    ips = [ip for ip in (settings.get("IPAddress"), settings.get("GlobalIPv6Address")) if ip]
    config = found.get("Config") or {}
    for entry in config.get("Env") or []:
        key, _, value = str(entry).partition("=")
        if key.upper() == "HEALTHCHECK_TCP_PORT":
            if not value.isdigit():
                raise BuildError(f"invalid health check tcp port: {value}")
            return ips, [int(value)]
    ports: list[int] = []
    for spec in sorted(config.get("ExposedPorts") or {}):
        number, _, proto = str(spec).partition("/")
        if (proto or "tcp") == "tcp" and number.isdigit() and len(ports) < 20:
            ports.append(int(number))
    return ips, sorted(ports)


def _wait_for_services(ex: DockerExecutor, services: list[ServiceInfo]) -> None:
    """``waitForServices``: one health check per service, in parallel."""
    timeout = ex.docker.wait_for_services_timeout or DEFAULT_WAIT_FOR_SERVICES_TIMEOUT
    if timeout <= 0 or not services:
        return
    ex.logger.println(f"Waiting for services to be up and running (timeout {timeout} seconds)...")
    threads = [
        threading.Thread(target=_wait_for_service, args=(ex, s, float(timeout)), daemon=True)
        for s in services
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _wait_for_service(ex: DockerExecutor, service: ServiceInfo, timeout: float) -> None:
    """``waitForServiceContainer``: on failure the warning block with logs."""
    start = time.monotonic()
    logs = None
    try:
        logs = _health_check(ex, service, timeout)
        if logs is None:
            return
        error = logs[0]
    except (BuildError, DockerError) as exc:
        error = str(exc)
    except ContextError:
        return
    text = (
        f"\n{ANSI_YELLOW}*** WARNING:{ANSI_RESET} Service {service.name} probably didn't "
        f"start properly.\n\nHealth check error:\n{error.strip()}\n"
    )
    if logs is not None:
        text += f"\nHealth check container logs:\n{logs[1]}\n"
    ex.ctx.wait(max(0.0, min(timeout - (time.monotonic() - start), 10.0)))
    text += f"\nService container logs:\n{_logs(ex, service.id)}\n\n"
    text += f"{ANSI_YELLOW}*********{ANSI_RESET}\n\n"
    # the block goes to a stream of its own: executor level, stderr
    with ex.logger.stream(STREAM_EXECUTOR_LEVEL, STDERR) as out:
        out.write(text.encode())


def _health_check(
    ex: DockerExecutor, service: ServiceInfo, timeout: float
) -> tuple[str, str] | None:
    """``runServiceHealthCheckContainer``: ``None`` when the service answered, else
    (error, health-check container logs)."""
    helper = ex.helper_image()
    if not service.ports:
        raise BuildError(f'service "{service.name}" has no exposed ports')
    env = [f"WAIT_FOR_SERVICE_TCP_ADDR={service.id[:12]}"]
    env += [f"WAIT_FOR_SERVICE_{port}_TCP_PORT={port}" for port in service.ports]
    name = f"{service.name}-wait-for-service"
    body = health_check_bodies(ex.info, service.id, service.ips, str(helper["Id"]), env,
                               ex.network_mode, ex.prepared.log_config)  # fmt: skip
    created = ex.client.call("POST", "/containers/create", {"name": name}, body=body)
    container_id = str(created["Id"])
    try:
        ex.client.call("POST", f"/containers/{container_id}/start")
        deadline = Context(ex.ctx, timeout=timeout)
        try:
            wait_container(ex.client, deadline, container_id)
        except BuildError as exc:
            return f'service "{name}" health check: {exc}', _logs(ex, container_id)
        except Exception as exc:  # the deadline: ContextError
            if deadline.done() and not ex.ctx.done():
                return f'service "{name}" timeout', _logs(ex, container_id)
            raise exc
        finally:
            deadline.release()
        return None
    finally:
        remove_container(ex.client, container_id)


def _logs(ex: DockerExecutor, container_id: str) -> str:
    """``readContainerLogs``: ``GET /containers/ID/logs?stdout=1&stderr=1&timestamps=1``."""
    try:
        status, raw = ex.client.request(
            "GET",
            f"/containers/{container_id}/logs",
            {"stderr": "1", "stdout": "1", "timestamps": "1"},
        )
    except OSError as exc:
        return str(exc)
    out, i = bytearray(), 0
    while i + 8 <= len(raw) and raw[i] in (0, 1, 2):
        size = int.from_bytes(raw[i + 4 : i + 8], "big")
        out += raw[i + 8 : i + 8 + size]
        i += 8 + size
    text = (bytes(out) if out else raw)[: 64 * 1024].decode(errors="replace")
    return text.strip() if status < 400 else f"logs: {status}"
