"""The custom executor's per-job podman objects: names, labels, the job and helper
containers, the per-job network and builds volume, the per-project cache volume, and
their removal (``executor prepare`` / ``executor cleanup``, :mod:`pipglr.guest.executor`).

Per job (the job name :attr:`Job.name` is
``runner-<short token>-project-<id>-concurrent-<n>-<job id>``, the brief's naming, its
first part upstream's ``Build.ProjectUniqueName``, common/build.go):

- the network ``<name>`` (bridge, DNS on: services answer by alias);
- the builds volume ``<name>-builds`` at ``/builds`` (``builds_dir``), shared by the
  job and helper containers, removed by cleanup: nothing of one job's checkout is seen
  by another (``builds_dir_is_shared`` is false);
- the job container ``<name>`` from the job image and the helper container
  ``<name>-helper`` from the runner's helper image (:mod:`pipglr.guest.jobimages`);
  both stay up for the whole job with an idle PID 1 (:data:`KEEPALIVE`), so state
  persists between stages, and every stage is an exec (:mod:`pipglr.guest.jobexec`).

The per-project cache is a named volume ``<project unique name>-cache-<md5 of
/cache>[-protected]`` at ``/cache`` (``cache_dir``), as the docker executor names its
per-project cache volumes when no ``cache_dir`` host path is configured
(executors/docker/internal/volumes/manager.go ``createCacheVolume``, ``withProtected``;
utils.go ``hashPath``). Not a bind of ``/cache/<project>`` like the docker executor's
``createHostBasedCacheVolume``: the libpod API does not create a missing bind source
(only the compat API does) and the runner user, who runs this driver, cannot write
the podman user's cache volume. ``runner-*`` volumes are the evictor's to age (README:
Nested storage); cleanup never removes the cache volume.

Jobs run as podman runs any container (its default seccomp profile, no added
capability, not privileged), like docker-executor jobs of an unprivileged runner.

Everything carries :data:`LABEL_JOB` (the job name; cleanup removes by it and by
name, never anything else) and the docker executor's job-id label
(:data:`pipglr.guest.prune.JOB_LABEL`), by which the prune keeps a running job's
containers together.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podman.errors import APIError, NotFound

from pipglr.errors import PipglrError

#: Labels on every object of a job (value: the job name) and their role.
LABEL_JOB = "io.pipglr.custom-executor.job"
LABEL_ROLE = "io.pipglr.custom-executor.role"
#: upstream executors/docker/internal/labels: the job id (the prune groups by it).
LABEL_JOB_ID = "com.gitlab.gitlab-runner.job.id"
BUILDS_DIR = "/builds"
CACHE_DIR = "/cache"
#: PID 1 of the job and helper containers: idle, reaps orphans (``wait``), ends on
#: SIGTERM from outside (``podman stop``) yet cannot be killed from inside (the kernel
#: drops signals to PID 1 it has no handler for: SIGKILL, and the stage killer's TERM
#: is sent to every other process only). Needs only ``/bin/sh`` and ``sleep``, as
#: upstream's docker executor needs ``sh`` (shells/bash.go ``BashDetectShellScript``).
KEEPALIVE = ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait; done"]
HOSTNAME_MAX = 63


class SystemFailure(PipglrError):
    """Something the job's environment could not do: the driver exits
    ``$SYSTEM_FAILURE_EXIT_CODE`` with this one line."""


#: The variables that name a job (the runner passes them with ``CUSTOM_ENV_``).
NAME_VARIABLES = (
    "CI_RUNNER_SHORT_TOKEN", "CI_PROJECT_ID", "CI_CONCURRENT_PROJECT_ID", "CI_JOB_ID",
)  # fmt: skip


@dataclass(frozen=True)
class Job:
    """What names a job's objects."""

    short_token: str
    project_id: str
    concurrent: str
    job_id: str
    protected: bool = False

    @property
    def project_unique(self) -> str:
        """common/build.go ``ProjectUniqueName``: per runner, project and slot."""
        return f"runner-{self.short_token}-project-{self.project_id}-concurrent-{self.concurrent}"

    @property
    def name(self) -> str:
        """The job container's (and network's) name."""
        return f"{self.project_unique}-{self.job_id}"

    @property
    def helper(self) -> str:
        return f"{self.name}-helper"

    @property
    def builds_volume(self) -> str:
        return f"{self.name}-builds"

    @property
    def cache_volume(self) -> str:
        """manager.go ``createCacheVolume`` (reusable) + ``withProtected``."""
        digest = hashlib.md5(CACHE_DIR.encode(), usedforsecurity=False).hexdigest()
        return f"{self.project_unique}-cache-{digest}" + ("-protected" if self.protected else "")

    @property
    def hostname(self) -> str:
        return self.name[:HOSTNAME_MAX].rstrip("-.")

    def labels(self, role: str) -> dict[str, str]:
        return {LABEL_JOB: self.name, LABEL_ROLE: role, LABEL_JOB_ID: self.job_id}


def job_from_env(env: Mapping[str, str]) -> Job:
    """The job of the runner's ``CUSTOM_ENV_*`` variables; one line naming what is
    missing or unusable (the values become container names)."""
    values = []
    for key in NAME_VARIABLES:
        value = env.get(f"CUSTOM_ENV_{key}", "")
        if not value or not all(c.isalnum() or c in "-_" for c in value):
            raise SystemFailure(
                f"CUSTOM_ENV_{key} is {'missing' if not value else repr(value)}: run this "
                "driver as gitlab-runner's custom executor (it sets the job's variables)"
            )
        values.append(value)
    token, project, concurrent, job_id = values
    return Job(token, project, concurrent, job_id, is_protected(env))


def is_protected(env: Mapping[str, str]) -> bool:
    """common/build.go ``IsProtected``: the job payload's ``git_info.protected``, else
    the *first* ``CI_COMMIT_REF_PROTECTED`` of its variables (a job's own variable of
    that name must not reach the protected cache); the payload is ``$JOB_RESPONSE_FILE``
    (executors/custom/custom.go ``createJobResponseFile``)."""
    try:
        payload = json.loads(Path(env.get("JOB_RESPONSE_FILE", "")).read_text())
    except (OSError, ValueError):
        payload = None
    if isinstance(payload, dict):
        protected = (payload.get("git_info") or {}).get("protected")
        if isinstance(protected, bool):
            return protected
        for variable in payload.get("variables") or []:
            if isinstance(variable, dict) and variable.get("key") == "CI_COMMIT_REF_PROTECTED":
                return str(variable.get("value")).lower() == "true"
        return False
    return env.get("CUSTOM_ENV_CI_COMMIT_REF_PROTECTED", "").lower() == "true"


def container_spec(
    job: Job,
    role: str,
    image: str,
    binds: Sequence[str] = (),
    environment: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """``containers.create`` arguments of the job (``role`` "job") or helper container:
    unprivileged, the keepalive as PID 1, the builds and cache volumes, ``binds``
    (``SRC:DEST[:ro]``, the company network's trust bundle), on the job's network."""
    volumes: dict[str, dict[str, str]] = {
        job.builds_volume: {"bind": BUILDS_DIR, "mode": "rw"},
        job.cache_volume: {"bind": CACHE_DIR, "mode": "rw"},
    }
    for bind in binds:
        source, dest, *mode = bind.split(":")
        volumes[source] = {"bind": dest, "mode": mode[0] if mode else "rw"}
    return {
        "image": image,
        "name": job.name if role == "job" else job.helper,
        "hostname": job.hostname,
        "entrypoint": KEEPALIVE[:2],
        "command": KEEPALIVE[2:],
        "labels": job.labels(role),
        "environment": dict(environment or {}),
        "volumes": volumes,
        "network_mode": "bridge",
        # Options that are not empty: podman-py drops empty values from the body, and
        # an empty entry put the container on podman's default network instead. The
        # job container's aliases are the docker executor's for its build container
        # (executors/docker/docker.go ``createContainer``:
        # ``NetworkConfig([]string{"build", containerName})``).
        "networks": {
            job.name: {"aliases": ["build", job.name]}
            if role == "job"
            else {"interface_name": "eth0"}
        },  # fmt: skip
        "privileged": False,
    }


def remove_job(client: Any, job: Job) -> list[str]:
    """Remove every container, the network and the builds volume of ``job`` — by its
    label and by its names, so a prepare killed before labelling anything is covered
    too; never the cache volume, never another job's object. Idempotent; returns what
    went ("container NAME", ...)."""
    gone: list[str] = []
    ours = {job.name, job.helper}
    for box in client.containers.list(all=True, filters={"label": f"{LABEL_JOB}={job.name}"}):
        ours.add(box.name)
    for name in sorted(ours, key=lambda n: (n == job.name, n)):  # the job container last
        try:
            box = client.containers.get(name)
        except NotFound:
            continue
        # Killed first (SIGKILL), as the docker executor's force removal does: a forced
        # remove stops with the image's STOPSIGNAL, which the keepalive PID 1 ignores
        # when it is not TERM (the test image's SIGRTMIN+3), and waits 10 s for it.
        with contextlib.suppress(APIError):  # not running
            box.kill()
        try:
            box.remove(force=True, v=True)
            gone.append(f"container {name}")
        except NotFound:
            pass
    try:
        network = client.networks.get(job.name)
        if (network.attrs.get("labels") or {}).get(LABEL_JOB, job.name) == job.name:
            network.remove(force=True)
            gone.append(f"network {job.name}")
    except NotFound:
        pass
    try:
        client.volumes.get(job.builds_volume).remove(force=True)
        gone.append(f"volume {job.builds_volume}")
    except NotFound:
        pass
    return gone


def create_shared(client: Any, job: Job) -> None:
    """The job's network and builds volume (labelled), and the project's cache volume
    when it is not there yet (labelled as the docker executor labels its cache)."""
    client.networks.create(
        job.name, driver="bridge", dns_enabled=True, labels=job.labels("network")
    )
    client.volumes.create(job.builds_volume, labels=job.labels("builds"))
    try:
        client.volumes.get(job.cache_volume)
    except NotFound:
        try:
            client.volumes.create(
                job.cache_volume,
                labels={"com.gitlab.gitlab-runner.type": "cache", "destination": CACHE_DIR,
                        "protected": str(job.protected).lower()},
            )  # fmt: skip
        except APIError:
            # Another job of the project created it meanwhile.
            client.volumes.get(job.cache_volume)


def start(client: Any, spec: Mapping[str, Any]) -> Any:
    """Create and start a container of :func:`container_spec`; the container."""
    box = client.containers.create(**spec)
    box.start()
    return box
