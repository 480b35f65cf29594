"""Volumes of a job (executors/docker/internal/volumes/manager.go ``manager``,
executors/docker/internal/volumes/utils.go, executors/docker/volume.go
``createVolumesManager``, executors/docker/internal/volumes/permission/linux_set.go
``dockerLinuxSetter``, executors/docker/internal/volumes/parser/)."""

from __future__ import annotations

import hashlib
import posixpath
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from . import gotypes
from .buildlog import BuildLogger
from .context import Context, ContextError
from .dockerapi import DockerClient, DockerError
from .dockerexec import wait_container

CACHE_INIT_MOUNT = "/gitlab-runner-cache-init"


@dataclass
class Volume:
    """parser/volume.go ``Volume``: ``[source:]destination[:mode]``."""

    source: str
    destination: str
    mode: str = ""

    @classmethod
    def parse(cls, spec: str) -> Volume:
        """A simplified parser/linux_parser.go ``ParseVolume``."""
        parts = spec.split(":")
        if len(parts) == 1:
            return cls("", parts[0])
        if len(parts) == 2:
            return cls(parts[0], parts[1])
        if len(parts) == 3:
            return cls(parts[0], parts[1], parts[2])
        raise ValueError(f"invalid volume specification: {spec!r}")

    def definition(self) -> str:
        """``Definition``: the ``Binds`` entry."""
        parts = [p for p in (self.source, self.destination, self.mode) if p]
        return ":".join(parts)


def hash_path(path: str) -> str:
    """utils.go ``hashPath``: md5 hex of the container path."""
    return hashlib.md5(path.encode(), usedforsecurity=False).hexdigest()


class PermissionSetter:
    """linux_set.go ``Set``: a helper container runs ``cache-init`` on a new volume."""

    def __init__(
        self, client: DockerClient, ctx: Context, helper_image_id: str, leftovers: list[str]
    ) -> None:
        self.client, self.ctx, self.helper_image_id = client, ctx, helper_image_id
        #: containers whose removal failed (upstream removes with the job's context, which
        #: fails once the job is cancelled; the stand-in hands them to Cleanup instead)
        self.leftovers = leftovers

    def set(self, volume_name: str, labels: dict[str, str]) -> None:
        """Create (``createContainer``: a Config with image, command and labels, a
        HostConfig with only the json-file LogConfig and the bind, no NetworkingConfig),
        start, wait, remove (``DELETE ?force=1``)."""
        config = gotypes.create_request(
            gotypes.config(
                Image=self.helper_image_id,
                Cmd=["gitlab-runner-helper", "cache-init", CACHE_INIT_MOUNT],
                Labels=labels,
            ),
            gotypes.host_config(
                LogConfig={"Type": "json-file", "Config": None},
                Binds=[f"{volume_name}:{CACHE_INIT_MOUNT}"],
            ),
            None,
        )
        name = f"{volume_name}-set-permission-{secrets.token_hex(8)}"
        created = self.client.call("POST", "/containers/create", {"name": name}, body=config)
        container_id = str(created["Id"])
        try:
            self.client.call("POST", f"/containers/{container_id}/start")
            wait_container(self.client, self.ctx, container_id)
        finally:
            try:
                self.client.call("DELETE", f"/containers/{container_id}", {"force": "1"})
            except (DockerError, ContextError):
                self.leftovers.append(container_id)


class VolumesManager:
    """manager.go: binds for every container of the job, temporary volumes to remove."""

    def __init__(
        self,
        client: DockerClient,
        logger: BuildLogger,
        labels: Callable[[dict[str, str]], dict[str, str]],
        *,
        base_path: str,
        unique_name: str,
        temporary_name: str,
        cache_dir: str = "",
        disable_cache: bool = False,
        driver: str = "",
        driver_opts: dict[str, str] | None = None,
        protected: bool = False,
        permission_setter: PermissionSetter | None = None,
    ) -> None:
        self.client, self.logger, self.labels = client, logger, labels
        self.base_path, self.unique_name, self.temporary_name = (
            base_path,
            unique_name,
            temporary_name,
        )
        self.cache_dir, self.disable_cache, self.driver = cache_dir, disable_cache, driver
        self.driver_opts = driver_opts
        self.protected, self.permission_setter = protected, permission_setter
        self.binds: list[str] = []
        self.temporary: list[str] = []
        self._managed: set[str] = set()

    def _absolute(self, path: str) -> str:
        if path == "/":
            raise ValueError("build directory needs to be a non-root path")
        return path if path.startswith("/") else posixpath.join(self.base_path, path)

    def _manage(self, destination: str) -> None:
        clean = posixpath.normpath(destination)
        if clean in self._managed:
            raise VolumeAlreadyDefined(f'volume for container path "{clean}" is already defined')
        self._managed.add(clean)

    def _protected(self, name: str) -> str:
        return name + "-protected" if self.protected else name

    def create(self, spec: str) -> None:
        """``Create``: ``src:dst`` binds a host path, ``dst`` alone is a cache volume."""
        if not spec:
            return
        volume = Volume.parse(spec)
        if volume.source:
            volume.destination = self._absolute(volume.destination)
            self._manage(volume.destination)
            self.binds.append(volume.definition())
        elif self.disable_cache:
            self._create_cache_volume(volume.destination, reusable=False)
        elif self.cache_dir:
            # createHostBasedCacheVolume: <cache_dir>/<ProjectRealUniqueName>/<md5(dst)>
            destination = self._absolute(volume.destination)
            self._manage(destination)
            host = posixpath.join(
                self.cache_dir, self.unique_name, self._protected(hash_path(destination))
            )
            self.binds.append(f"{host}:{destination}")
        else:
            self._create_cache_volume(volume.destination, reusable=True)

    def create_temporary(self, destination: str) -> None:
        """``CreateTemporary``: a volume removed at cleanup."""
        self._create_cache_volume(destination, reusable=False)

    def _create_cache_volume(self, destination: str, reusable: bool) -> str:
        """``createCacheVolume``: ``POST /volumes/create`` (``volume.CreateOptions``: every
        field ``omitempty``, so no Driver/DriverOpts unless configured) then the
        permission container."""
        destination = self._absolute(destination)
        self._manage(destination)
        prefix = self.unique_name if reusable else self.temporary_name
        name = self._protected(f"{prefix}-cache-{hash_path(destination)}")
        labels = self.labels(
            {"destination": destination, "protected": str(self.protected).lower(), "type": "cache"}
        )
        fields = {"Driver": self.driver, "DriverOpts": gotypes.go_map(self.driver_opts),
                  "Labels": gotypes.go_map(labels), "Name": name}  # fmt: skip
        body = {key: value for key, value in fields.items() if value}
        created = self.client.call("POST", "/volumes/create", body=body)
        volume_name = str((created or {}).get("Name") or name)
        if not reusable:
            # upstream lists it only after the permission container succeeded; listed
            # here so a job cancelled meanwhile leaves no volume behind
            self.temporary.append(volume_name)
        if self.permission_setter is not None:
            self.permission_setter.set(volume_name, self.labels({"type": "cache-init"}))
        self.binds.append(f"{volume_name}:{destination}")
        self.logger.debugln(f'Using volume "{volume_name}" as cache "{destination}"...')
        return name

    def remove_temporary(self) -> None:
        """``RemoveTemporary``: ``DELETE /volumes/NAME?force=1``; missing ones are fine."""
        for name in self.temporary:
            try:
                self.client.call("DELETE", f"/volumes/{name}", {"force": "1"})
            except DockerError as exc:
                if not exc.not_found:
                    raise


class VolumeAlreadyDefined(ValueError):
    """utils.go ``ErrVolumeAlreadyDefined``."""
