"""The build and predefined (helper) containers of a job, created once and reused stage
after stage (executors/docker/docker_command.go ``requestContainer``,
``requestHelperContainer``, ``requestBuildContainer``, ``hasExistingContainer``;
executors/docker/docker.go ``createContainer``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import helper as helperimage
from .allowed import is_in_allowed_privileged_images
from .configs import (
    build_user,
    container_config,
    host_config,
    network_config,
    overwrite_entrypoint,
)
from .dockerapi import DockerError
from .dockerexec import remove_container
from .gotypes import create_request
from .jobspec import Image
from .scripts import BASH_DETECT_SHELL

if TYPE_CHECKING:
    from .executor import DockerExecutor

BUILD = "build"
PREDEFINED = "predefined"


def exists(ex: DockerExecutor, container_id: str) -> bool:
    """``hasExistingContainer``: ``GET /containers/ID/json``."""
    if not container_id:
        return False
    try:
        ex.client.call("GET", f"/containers/{container_id}/json")
    except DockerError as exc:
        if not exc.not_found:
            ex.logger.warningln("Failed to inspect", "container", container_id, exc)
        return False
    return True


def request_container(ex: DockerExecutor, container_type: str) -> str:
    """``requestHelperContainer`` (the helper image by id, Cmd ``gitlab-runner-build``)
    or ``requestBuildContainer`` (the job image, Cmd ``sh -c <bash detection>``)."""
    if container_type == PREDEFINED:
        if not exists(ex, ex.helper_container):
            image_id = str(ex.helper_image()["Id"])
            definition = Image(name=image_id)
            ex.helper_container = create_container(
                ex, PREDEFINED, definition, [image_id], helperimage.CMD
            )
        return ex.helper_container
    if not exists(ex, ex.build_container):
        cmd = ["sh", "-c", BASH_DETECT_SHELL]
        ex.build_container = create_container(ex, BUILD, ex.info.job.image, [], cmd)
    return ex.build_container


def create_container(
    ex: DockerExecutor,
    container_type: str,
    definition: Image,
    internal_images: list[str],
    cmd: list[str],
) -> str:
    """``createContainer``: the image (allow-list, pull policies), the bodies
    (``defaultContainerConfigurator``: ``createContainerConfig``, ``createHostConfig``
    with ``isInPrivilegedImageList`` of the definition's name, ``networkConfig``), a
    stale container of the same name removed, ``POST /containers/create?name=<random
    name>-<type>``, inspect."""
    image_name = ex.expand_image_name(definition.name, internal_images)
    image = ex.pull.get_image(image_name, definition.pull_policy)
    name = ex.container_name(container_type)
    build = container_type == BUILD
    docker = ex.docker
    try:
        user = build_user(ex.info, definition) if build else ""
    except ValueError as exc:
        raise ValueError(f"failed to create container configuration: {exc}") from exc
    entrypoint = overwrite_entrypoint(ex.logger, docker, definition)
    config = container_config(ex.info, container_type, str(image["Id"]), cmd, entrypoint,
                              user, ex.legacy_api)  # fmt: skip
    host = host_config(
        docker,
        network_mode=ex.network_mode,
        binds=ex.volumes_manager.binds,
        links=ex.links,
        devices=ex.prepared.devices,
        privileged_image=is_in_allowed_privileged_images(
            ex.info.all_variables().expand_value(definition.name),
            docker.allowed_privileged_images,
        ),
        use_init=build and ex.info.flag("FF_USE_INIT_WITH_DOCKER_EXECUTOR"),
        log_config=ex.prepared.log_config,
    )
    networking = network_config(ex.network_mode, [BUILD, name], ex.legacy_api, docker.mac_address)
    body = create_request(config, host, networking, ex.legacy_api)
    remove_container(ex.client, name)
    ex.logger.debugln("Creating container", name, "...")
    created = ex.client.call("POST", "/containers/create", {"name": name}, body=body)
    container_id = str(created["Id"])
    ex.temporary.append(container_id)
    ex.client.call("GET", f"/containers/{container_id}/json")
    return container_id
