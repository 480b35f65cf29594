"""The docker executor's per-job dependencies before any stage runs
(executors/docker/docker.go ``createDependencies``: ``createBuildNetwork``,
``createVolumesManager``, ``createVolumes``, ``createBuildVolume``;
executors/docker/internal/networks/manager.go ``Create``; executors/docker/volume.go)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .configs import labels
from .volumes import PermissionSetter, VolumeAlreadyDefined, VolumesManager

if TYPE_CHECKING:
    from .executor import DockerExecutor


def create_network(ex: DockerExecutor) -> None:
    """networks/manager.go ``Create``: a network per build with FF_NETWORK_PER_BUILD and
    no ``network_mode``: ``POST /networks/create`` then ``GET /networks/ID``."""
    ex.network_mode = ex.docker.network_mode
    if ex.network_mode or not ex.info.flag("FF_NETWORK_PER_BUILD"):
        return
    name = ex.info.project_unique_short_name()
    options = {"com.docker.network.driver.mtu": str(ex.docker.network_mtu)}
    body = {
        "Name": name,
        "CheckDuplicate": True,
        "Labels": labels(ex.info, {}),
        "EnableIPv6": ex.docker.enable_ipv6,
        "Options": options if ex.docker.network_mtu else {},
    }
    ex.logger.debugln("Creating build network", name)
    created = ex.client.call("POST", "/networks/create", body=body)
    ex.network_id = str(created["Id"])
    ex.client.call("GET", f"/networks/{ex.network_id}")
    ex.network_mode = name


def create_volumes_manager(ex: DockerExecutor) -> VolumesManager:
    """volume.go ``createVolumesManager`` with the Linux permission setter (which needs
    the helper image right away: ``newVolumePermissionSetter`` → ``getHelperImage``)."""
    job = ex.info.job
    protected = (
        bool(job.protected)
        or ex.info.job_variables().bool("CI_COMMIT_REF_PROTECTED")
        or any(c.key.endswith("-protected") and not c.key.endswith("-non_protected")
               for c in job.cache)
    )  # fmt: skip
    helper_id = str(ex.helper_image()["Id"])
    return VolumesManager(
        ex.client,
        ex.logger,
        lambda other: labels(ex.info, other),
        base_path=ex.info.build_dir,
        unique_name=ex.info.project_real_unique_name(),
        temporary_name=ex.random_name,
        cache_dir=ex.docker.cache_dir,
        disable_cache=ex.docker.disable_cache,
        driver=ex.docker.volume_driver,
        driver_opts=ex.docker.volume_driver_ops,
        protected=protected,
        permission_setter=PermissionSetter(ex.client, ex.ctx, helper_id, ex.temporary),
    )


def create_volumes(ex: DockerExecutor, manager: VolumesManager) -> None:
    """``createVolumes`` (``[runners.docker] volumes``) then ``createBuildVolume``:
    /builds reusable with GIT_STRATEGY=fetch, else temporary; skipped when a configured
    volume already covers it."""
    ex.current_stage = "docker_creating_user_volumes"
    for volume in ex.docker.volumes:
        manager.create(volume)
    ex.current_stage = "docker_creating_build_volumes"
    try:
        if ex.info.git_strategy() == "fetch":
            manager.create(ex.info.root_dir)
        else:
            manager.create_temporary(ex.info.root_dir)
    except VolumeAlreadyDefined:
        pass
