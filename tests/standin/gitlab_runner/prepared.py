"""What the docker executor derives from ``[runners.docker]`` while it prepares, before
any container exists (executors/docker/docker.go ``Prepare``: ``GetLogConfig``;
``createDependencies``: ``bindDevices``), and the stand-in's own guard against keys it
does not replay (:mod:`.configkeys`), checked first."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import configkeys
from .config import RunnerConfig
from .configs import bind_devices
from .errors import RUNNER_SYSTEM_FAILURE, BuildError


@dataclass
class PreparedConfig:
    """``executor.logConfig`` and ``executor.devices``."""

    log_config: dict[str, Any] = field(
        default_factory=lambda: {"Type": "json-file", "Config": None}
    )
    devices: list[dict[str, str]] = field(default_factory=list)

    def check(self, runner: RunnerConfig) -> None:
        """The stand-in's key guard, then ``GetLogConfig`` (its error is a runner system
        failure: "creating docker log configuration: ...")."""
        configkeys.check(runner.raw)
        try:
            self.log_config = runner.docker.log_config()
        except ValueError as exc:
            raise BuildError(
                f"creating docker log configuration: {exc}", RUNNER_SYSTEM_FAILURE
            ) from exc

    def bind_devices(self, runner: RunnerConfig) -> None:
        """``bindDevices`` (a parse error fails ``Prepare``, which is retried)."""
        self.devices = bind_devices(runner.docker.devices)
