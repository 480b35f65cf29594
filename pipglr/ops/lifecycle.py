"""The pipglr container's lifecycle: ``up`` from the image's run label with resource
and extra options, ``down`` with the runner's graceful stop, and its logs."""

from __future__ import annotations

from collections.abc import Sequence

from pipglr import layout
from pipglr.build import labels
from pipglr.errors import ConfigError, EngineError
from pipglr.ops import privilege
from pipglr.ops.imageobjects import ImageObjects
from pipglr.ops.metricsport import MetricsPort


def resource_args(
    cpus: str | None = None,
    memory: str | None = None,
    pids: int | None = None,
    volumes: Sequence[str] = (),
    env: Sequence[str] = (),
    metrics: MetricsPort | None = None,
) -> list[str]:
    """``podman run`` options for limits and extras (``pipglr up`` and ``quadlet``);
    ``metrics``: where to publish the exporter's port (:mod:`pipglr.ops.metricsport`)."""
    extra: list[str] = []
    if cpus:
        extra += ["--cpus", cpus]
    if memory:
        extra += ["--memory", memory]
    if pids:
        extra += ["--pids-limit", str(pids)]
    for volume in volumes:
        extra += ["--volume", volume]
    for item in env:
        extra += ["--env", item]
    if metrics is not None:
        extra += ["--publish", metrics.publish()]
    return extra


def with_extra(args: Sequence[str], image: str, extra: Sequence[str]) -> list[str]:
    """``run`` label arguments with ``extra`` options inserted before the image."""
    at = list(args).index(image)
    return [*args[:at], *extra, *args[at:]]


class Lifecycle(ImageObjects):
    """Start and stop the pipglr container; the command showing its logs."""

    def up(
        self,
        cpus: str | None = None,
        memory: str | None = None,
        pids: int | None = None,
        volumes: Sequence[str] = (),
        env: Sequence[str] = (),
        outer: privilege.OuterChoice | None = None,
        metrics: MetricsPort | None = None,
    ) -> str:
        """Start pipglr from the image's run label with resource/extra options added
        and its nesting options as ``outer`` chose (``None``: as the label has them);
        ``metrics``: the host address and port the exporter is published on (None: not)."""
        secrets = self.secrets()
        if layout.CONFIG_SECRET not in secrets:
            raise ConfigError("there is no config.toml secret: create it with `pipglr register`")
        have = self.volumes()
        for volume, label in ((layout.STORAGE_VOLUME, "setupstorage"),
                              (layout.CACHE_VOLUME, "setupcache")):  # fmt: skip
            if volume not in have:
                self.run_label(label)
        # The network and registry-login secrets, when stored (pipglr.ops.netops).
        extra = [
            *labels.optional_secret_args(secrets),
            *resource_args(cpus, memory, pids, volumes, env, metrics),
        ]
        args = with_extra(privilege.fit(self.label_args("run"), outer), self.image, extra)
        result = self.outer.run(*args, check=False)
        if result.returncode != 0:
            # A failed start leaves a created container behind; it would block the next up.
            self.outer.run("rm", "--force", "--ignore", layout.CONTAINER_NAME, check=False)
            error = (result.stderr.strip().splitlines() or ["no output"])[-1]
            limited = bool(cpus or memory or pids)
            if limited and any(word in error for word in ("cgroup", ".max", "controller")):
                raise EngineError(
                    "podman could not apply --cpus/--memory/--pids: the cgroup controllers "
                    "are not delegated to this user (`pipglr doctor` shows which); start "
                    "without limits, or delegate them: `systemctl edit user@.service` "
                    "(as root) with [Service] Delegate=cpu cpuset io memory pids"
                )
            raise EngineError(f"starting pipglr failed: {error}")
        return result.stdout.strip()

    def down(self, timeout: int = layout.OUTER_STOP_TIMEOUT) -> bool:
        """Stop and remove the pipglr container; secrets and volumes stay.

        The stop lets the runner finish running jobs (its graceful stop) for up to
        ``timeout`` seconds, then podman kills what is left.
        """
        exists = self.outer.run("container", "exists", layout.CONTAINER_NAME, check=False)
        if exists.returncode != 0:
            return False
        self.outer.run(
            "stop", "--time", str(timeout), layout.CONTAINER_NAME, check=False,
            timeout=timeout + 60,
        )  # fmt: skip
        self.outer.run("rm", "--force", layout.CONTAINER_NAME)
        return True

    def logs_argv(self, follow: bool) -> list[str]:
        """The command showing pipglr's logs."""
        return [*self.outer.podman, "logs", *(["--follow"] if follow else []),
                layout.CONTAINER_NAME]  # fmt: skip
