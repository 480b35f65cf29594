"""The build and predefined (helper) containers of a job, created once and reused stage
after stage (executors/docker/docker_command.go ``requestContainer``,
``requestHelperContainer``, ``requestBuildContainer``, ``hasExistingContainer``;
executors/docker/docker.go ``createContainer``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import helper as helperimage
from .configs import container_config, host_config, network_config
from .dockerapi import DockerError
from .dockerexec import remove_container
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
    """``requestHelperContainer`` (helper image, Cmd ``gitlab-runner-build``) or
    ``requestBuildContainer`` (job image, Cmd ``sh -c <bash detection>``)."""
    if container_type == PREDEFINED:
        if not exists(ex, ex.helper_container):
            image_id = str(ex.helper_image()["Id"])
            ex.helper_container = create_container(ex, PREDEFINED, image_id, [], helperimage.CMD)
        return ex.helper_container
    if not exists(ex, ex.build_container):
        job_image = ex.info.job.image
        overwrite = job_image.entrypoint and not ex.docker.disable_entrypoint_overwrite
        ex.build_container = create_container(
            ex,
            BUILD,
            ex.expand_image_name(job_image.name),
            job_image.pull_policy,
            ["sh", "-c", BASH_DETECT_SHELL],
            job_image.entrypoint if overwrite else None,
            ex.docker.user or job_image.docker_user,
        )
    return ex.build_container


def create_container(
    ex: DockerExecutor,
    container_type: str,
    image_name: str,
    policies: list[str],
    cmd: list[str],
    entrypoint: list[str] | None = None,
    user: str = "",
) -> str:
    """``createContainer``: the image (pull policies), a stale container of the same
    name removed, ``POST /containers/create?name=<random name>-<type>``, inspect."""
    image = ex.pull.get_image(image_name, policies)
    name = ex.container_name(container_type)
    build = container_type == BUILD
    config = container_config(ex.info, container_type, str(image["Id"]), cmd, entrypoint,
                              user if build else "", ex.legacy_api)  # fmt: skip
    config["HostConfig"] = host_config(
        ex.docker,
        network_mode=ex.network_mode,
        binds=ex.volumes_manager.binds,
        extra_hosts=ex.links,
        privileged=ex.docker.privileged,
        use_init=build and ex.info.flag("FF_USE_INIT_WITH_DOCKER_EXECUTOR"),
    )
    config["NetworkingConfig"] = network_config(
        ex.network_mode, [BUILD, name], ex.legacy_api, ex.docker.mac_address
    )
    remove_container(ex.client, name)
    ex.logger.debugln("Creating container", name, "...")
    created = ex.client.call("POST", "/containers/create", {"name": name}, body=config)
    container_id = str(created["Id"])
    ex.temporary.append(container_id)
    ex.client.call("GET", f"/containers/{container_id}/json")
    return container_id
