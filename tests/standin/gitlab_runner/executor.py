"""The docker executor: prepare, run a stage, clean up (executors/docker/docker.go
``executor``: ``Prepare``, ``connectDocker``, ``createDependencies``,
``startAndWatchContainer``, ``removeContainer``, ``Cleanup``, ``cleanupNetwork``,
``cleanupVolume``; executors/docker/docker_command.go ``commandExecutor``: ``Prepare``,
``Run``, ``runContainer``; the executor stages ``SetCurrentStage`` records for the
metrics: common/executor.go ``ExecutorStageCreated``, executors/docker/docker.go
``ExecutorStagePrepare``/``ExecutorStageRun``/``ExecutorStageCleanup``/
``ExecutorStageCreatingUserVolumes``/``ExecutorStageCreatingBuildVolumes``/
``ExecutorStageCreatingServices``). Dependencies: :mod:`.dependencies`; services:
:mod:`.services`; stage containers: :mod:`.containers`.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
from pathlib import Path
from typing import Any

from . import helper as helperimage
from .allowed import verify_allowed_image
from .buildinfo import BuildInfo
from .buildlog import BuildLogger
from .configs import container_labels
from .containers import BUILD, PREDEFINED, request_container
from .context import Context
from .dependencies import create_network, create_volumes, create_volumes_manager
from .dockerapi import DockerClient, DockerError
from .dockerexec import exec_stage, remove_container
from .errors import BuildError
from .images import PullManager
from .prepared import PreparedConfig
from .registryauth import Resolver
from .services import create_services
from .volumes import VolumesManager

CLEANUP_TIMEOUT = 5 * 60.0
#: common/consts.go ``DefaultExecutorStageAttempts``; common/build_settings.go keeps
#: EXECUTOR_JOB_SECTION_ATTEMPTS within [1, 10] (otherwise the default).
DEFAULT_SECTION_ATTEMPTS = 1
MAX_SECTION_ATTEMPTS = 10


def job_section_attempts(raw: str) -> int:
    """``GetExecutorJobSectionAttempts``: EXECUTOR_JOB_SECTION_ATTEMPTS as
    ``strconv.ParseInt`` reads it (sign and digits only), the default when empty, not a
    number or outside [1, 10] (common/build_settings.go ``validate``, ``initSettings``)."""
    if not re.fullmatch(r"[+-]?[0-9]+", raw):
        return DEFAULT_SECTION_ATTEMPTS
    value = int(raw)
    return value if 1 <= value <= MAX_SECTION_ATTEMPTS else DEFAULT_SECTION_ATTEMPTS


class DockerExecutor:
    """One job's containers, network and volumes on one engine."""

    #: where prebuilt helper archives are looked for (``None``: prebuilt.go's places)
    prebuilt_dirs: list[Path] | None = None

    def __init__(self, info: BuildInfo, logger: BuildLogger, ctx: Context) -> None:
        self.info, self.logger, self.ctx = info, logger, ctx
        self.docker = info.runner.docker
        self.client = DockerClient(self.docker.host or os.environ.get("DOCKER_HOST", ""), ctx=ctx)
        self.legacy_api = True
        self.network_mode = ""
        self.network_id = ""
        self.temporary: list[str] = []
        self.links: list[str] = []
        self.build_container = ""
        self.helper_container = ""
        self.volumes: VolumesManager | None = None
        # pull.go createPullManager: DOCKER_AUTH_CONFIG and the payload's credentials;
        # [runners.docker]'s allowed_pull_policies limit every pull
        self.pull = PullManager(
            self.client, logger, self.docker.pull_policies(), Resolver.for_build(info), self.docker
        )
        self.prepared = PreparedConfig()
        self.helper: helperimage.HelperImage | None = None
        # docker.go getProjectUniqRandomizedName: <ProjectUniqueName>-<8 random bytes hex>
        self.random_name = f"{info.project_unique_name()}-{secrets.token_hex(8)}"
        self._lock = threading.Lock()
        # docker_command.go newDockerCreator: SetCurrentStage(ExecutorStageCreated)
        self.current_stage = "created"

    # --- Prepare ------------------------------------------------------------------------
    def prepare(self) -> None:
        """``executor.Prepare`` + ``commandExecutor.Prepare``."""
        self.current_stage = "docker_prepare"
        self.prepared.check(self.info.runner)
        self._connect()
        image = self.expand_image_name(self.info.job.image.name)
        self.logger.println("Using Docker executor with image", image, "...")
        create_network(self)
        self.prepared.bind_devices(self.info.runner)
        self.volumes = create_volumes_manager(self)
        create_volumes(self, self.volumes)
        self.current_stage = "docker_creating_services"  # services.go createServices
        self.links = create_services(self)
        self.helper_image()
        self.pull.get_image(image, self.info.job.image.pull_policy)

    def _connect(self) -> None:
        """``connectDocker``: version negotiation ping, ``GET /info``, ``GET /version``."""
        self.client.negotiate()
        info = self.client.call("GET", "/info") or {}
        version = self.client.call("GET", "/version") or {}
        api = tuple(int(p) for p in str(version.get("ApiVersion", "1.41")).split(".")[:2])
        self.legacy_api = api < (1, 44)
        if info.get("OSType", "linux") not in ("linux", "windows", "freebsd"):
            raise BuildError(f"unsupported os type: {info.get('OSType')}")
        self.helper = helperimage.HelperImage(
            self.client,
            self.logger,
            self.pull,
            str(info.get("Architecture", "")),
            override=self.info.all_variables().expand_value(self.docker.helper_image),
            dirs=self.prebuilt_dirs,
        )
        self.logger.debugln("Connected to docker daemon", version.get("ApiVersion"))

    @property
    def volumes_manager(self) -> VolumesManager:
        """The volumes manager (after ``create_volumes_manager``)."""
        if self.volumes is None:
            raise BuildError("volumesManager is undefined")
        return self.volumes

    def helper_image(self) -> dict[str, Any]:
        """``getHelperImage``."""
        if self.helper is None:
            raise BuildError("not connected to docker")
        return self.helper.get()

    def expand_image_name(self, name: str, internal: list[str] | None = None) -> str:
        """``expandImageName``: the job image (if ``allowed_images`` allow it, or it is
        the default or an ``internal`` one), else ``[runners.docker] image``."""
        variables = self.info.all_variables()
        default = variables.expand_value(self.docker.image)
        if name:
            image = variables.expand_value(name)
            internal = [*(internal or []), default]
            verify_allowed_image(self.logger, image, "images", self.docker.allowed_images, internal)
            return image
        if not default:
            raise BuildError("no Docker image specified to run the build in")
        return default

    def container_name(self, suffix: str) -> str:
        """``makeContainerName``."""
        return f"{self.random_name}-{suffix}"

    # --- Run ---------------------------------------------------------------------------
    def run(self, stage_ctx: Context, script: str, predefined: bool, stage: str = "") -> None:
        """``commandExecutor.Run`` → ``runContainer``: the stage's container (created
        again when it is gone), then ``startAndWatchContainer``; while the container is not
        found (removed before its attach or start), up to EXECUTOR_JOB_SECTION_ATTEMPTS
        attempts, each after "Container ... not found or removed. Will retry..."."""
        attempts = job_section_attempts(
            self.info.all_variables().get("EXECUTOR_JOB_SECTION_ATTEMPTS")
        )
        error: DockerError | None = None
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                self.logger.infoln(f"Retrying {stage}")
            with self._lock:
                container_id = request_container(self, PREDEFINED if predefined else BUILD)
            self.current_stage = "docker_run"
            try:
                self._start_and_watch(stage_ctx, container_id, script)
                return
            except DockerError as exc:
                if not exc.not_found:
                    raise
                error = exc
            self.logger.errorln(f'Container "{container_id}" not found or removed. Will retry...')
        if attempts > 1:
            self.logger.errorln("Execution attempts exceeded")
        if error is not None:
            raise error

    def _start_and_watch(self, stage_ctx: Context, container_id: str, script: str) -> None:
        """``startAndWatchContainer``: Exec, and remove the container when the stage's
        context ended (an attach cut short can leave it unusable)."""
        try:
            exec_stage(
                self.client,
                stage_ctx,
                self.ctx,
                container_id,
                script,
                self.logger,
                graceful=container_id == self.build_container,
            )
        finally:
            if stage_ctx.done() and not self.ctx.done():
                remove_container(self.client, container_id)

    def service_labels(self, other: dict[str, str]) -> dict[str, str]:
        """Labels of service containers (``prepareContainerLabels``)."""
        return container_labels(self.info, other)

    # --- Cleanup -------------------------------------------------------------------------
    def cleanup(self) -> None:
        """``Cleanup``: temporary containers (in parallel), temporary volumes, network;
        on a fresh context (the job's may be cancelled)."""
        self.current_stage = "docker_cleanup"
        self.client = self.client.detached()
        if self.volumes is not None:
            self.volumes.client = self.client
        threads = [
            threading.Thread(target=self._remove_quietly, args=(cid,), daemon=True)
            for cid in list(self.temporary)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(CLEANUP_TIMEOUT)
        if self.volumes is not None:
            try:
                self.volumes.remove_temporary()
            except DockerError as exc:
                self.logger.errorln("Failed to cleanup volumes", exc)
        if self.network_id:
            try:
                found = self.client.call("GET", f"/networks/{self.network_id}") or {}
                for container_id in found.get("Containers") or {}:
                    self._remove_quietly(container_id)
                self.client.call("DELETE", f"/networks/{self.network_id}")
            except DockerError as exc:
                self.logger.errorln("Failed to remove network for build", exc)

    def _remove_quietly(self, container_id: str) -> None:
        try:
            remove_container(self.client, container_id)
        except (DockerError, OSError) as exc:
            self.logger.errorln("Failed to remove container", container_id, exc)
