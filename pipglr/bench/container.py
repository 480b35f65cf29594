"""The bench's outer pipglr container: started from the run label, jobs through its API.

One :class:`BenchContainer` per outer mode. Its outer options follow the settings it
is started with (``labels.NESTING_OPTIONS``, or ``PRIVILEGED_NESTING_OPTIONS`` when
``nested_privileged``), so a measurement that needs privileged nested jobs restarts it
with those (:meth:`BenchContainer.start`); its volumes, and the images loaded into the
nested storage, survive restarts.
"""

from __future__ import annotations

import dataclasses
import shlex
import subprocess
import time

from pipglr import layout
from pipglr.build import labels
from pipglr.errors import EngineError
from pipglr.ops.outer import DOCKER_CLI, Outer
from pipglr.settings import BuildSettings

BENCH_NAME = "pipglr-bench"
BENCH_SECRET = "pipglr-bench-config"
BENCH_VOLUMES = (layout.STORAGE_VOLUME, layout.CACHE_VOLUME, layout.RUNNER_VOLUME)
#: A syntactically valid config whose runner never reaches a GitLab (none is needed).
BENCH_CONFIG = f"""concurrent = 8
check_interval = 30

[[runners]]
  name = "bench"
  url = "https://gitlab.invalid/"
  token = "glrt-pipglr-bench-not-a-token"
  executor = "docker"
  [runners.docker]
    host = "{layout.DOCKER_HOST}"
    image = "bench"
"""


def outer_options(privileged: bool) -> str:
    """How the outer container is started, for the report's notes."""
    name = "PRIVILEGED_NESTING_OPTIONS" if privileged else "NESTING_OPTIONS"
    options = labels.PRIVILEGED_NESTING_OPTIONS if privileged else labels.NESTING_OPTIONS
    return f"labels.{name} ({' '.join(options)})"


class BenchContainer:
    """One outer mode's bench container and the ways to run work in and beside it."""

    def __init__(self, outer: Outer, image: str, settings: BuildSettings,
                 config: str = BENCH_CONFIG) -> None:  # fmt: skip
        self.outer = outer
        self.image = image
        self.settings = settings
        self.config = config
        self.docker_cli = ""
        #: whether the running container was started with the privileged options
        self.privileged = settings.nested_privileged

    def start(self, privileged: bool | None = None) -> float:
        """(Re)start the bench instance from the run label; seconds until ready.

        ``privileged``: start the outer with the options privileged nested jobs need
        (True) or the least-privilege ones (False); None: as the image's settings say.
        """
        self.stop()
        wanted = self.settings.nested_privileged if privileged is None else privileged
        settings = dataclasses.replace(self.settings, nested_privileged=wanted)
        started = time.monotonic()
        self.outer.run(*labels.second_instance(settings, self.image, BENCH_NAME, BENCH_SECRET,
                                               self.outer.mode == "rootful")[1:])  # fmt: skip
        self.privileged = wanted
        ready = [
            "sh", "-c",
            f"systemctl is-active -q {layout.RUNNER_SERVICE_UNIT} && runuser -u "
            f"{layout.RUNNER.name} -- {layout.PYTHON} -m {layout.GUEST_MODULE} ping",
        ]  # fmt: skip
        deadline = started + 120
        while True:
            probe = self.outer.exec(BENCH_NAME, *ready, check=False)
            if probe.returncode == 0:
                seconds = time.monotonic() - started
                if self.docker_cli:  # /tmp is a tmpfs: a restart dropped it
                    self.outer.install_docker_cli(BENCH_NAME, self.docker_cli)
                return seconds
            if time.monotonic() > deadline:
                raise EngineError(f"bench container not ready after 120s: {probe.stderr}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.outer.run("rm", "--force", "--ignore", BENCH_NAME, check=False)

    def prepare(self, docker_cli: str) -> None:
        """Secret, docker CLI and job image (the image under test) for the runs."""
        self.outer.run("secret", "rm", BENCH_SECRET, check=False)
        self.outer.run("secret", "create", BENCH_SECRET, "-", input=self.config)
        self.remove_volumes()
        self.docker_cli = docker_cli
        self.start()
        self.outer.load_nested_image(BENCH_NAME, self.image)

    def remove(self) -> None:
        """The container, its secret and its volumes gone."""
        self.stop()
        self.outer.run("secret", "rm", BENCH_SECRET, check=False)
        self.remove_volumes()

    def remove_volumes(self) -> None:
        for volume in BENCH_VOLUMES:
            self.outer.run("volume", "rm", "--force", f"{BENCH_NAME}-{volume}", check=False)

    def load(self, image: str) -> None:
        """Make ``image`` (root's) a nested image of the bench container."""
        self.outer.copy_image_from_root(image)
        self.outer.load_nested_image(BENCH_NAME, image)

    def nested(self, script: str) -> subprocess.CompletedProcess[str]:
        """Run ``sh -c script`` as runner in the outer container (docker CLI available)."""
        return self.outer.exec(
            BENCH_NAME, "sh", "-c", script, user=layout.RUNNER.name, check=False, timeout=1800
        )

    def nested_job(self, script: str, *options: str, image: str | None = None,
                   timeout: float = 1800) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """A nested job through the API running ``script`` (stdin) with ``sh``."""
        run = self.docker_cmd("run", "--rm", "-i", *options, "--entrypoint", "sh",
                              image or self.image)  # fmt: skip
        return self.outer.exec(
            BENCH_NAME, "sh", "-c", run, user=layout.RUNNER.name, input=script,
            check=False, timeout=timeout,
        )  # fmt: skip

    def host_job(self, script: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        """The same job in a container of the host podman (no nesting)."""
        return self.outer.run(
            "run", "--rm", "-i", "--entrypoint", "sh", self.image,
            input=script, check=False, timeout=timeout,
        )  # fmt: skip

    def docker_cmd(self, *args: str) -> str:
        """A docker CLI command line against the inner API, for ``sh -c``."""
        return shlex.join([DOCKER_CLI, "-H", layout.DOCKER_HOST, *args])

    def inner_podman(self) -> str:
        """Version, storage driver and runtime of the nested podman."""
        return self.outer.exec(
            BENCH_NAME, "podman", "info", "--format",
            "{{.Version.Version}}, storage {{.Store.GraphDriverName}}, runtime "
            "{{.Host.OCIRuntime.Name}}", user=layout.PODMAN.name, check=False,
        ).stdout.strip() or "unknown"  # fmt: skip
