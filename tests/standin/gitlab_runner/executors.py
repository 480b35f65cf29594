"""The executors the stand-in runs, by ``[[runners]] executor`` name (main.go's
provider table: ``"docker"`` → executors/docker ``NewProvider``, ``"custom"`` →
executors/custom ``NewProvider("gitlab-runner")``; common/executor.go ``Executor``:
``Prepare``, ``Run``, ``Cleanup``, ``GetCurrentStage``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from .buildinfo import BuildInfo
from .buildlog import BuildLogger
from .context import Context
from .custom import CustomExecutor
from .executor import DockerExecutor


class Executor(Protocol):
    """``common.Executor`` as :mod:`.build` and :mod:`.jobscript` drive it."""

    current_stage: str

    def prepare(self) -> None:
        """``Prepare``."""

    def run(self, stage_ctx: Context, script: str, predefined: bool, stage: str = "") -> None:
        """``Run`` one stage script."""

    def cleanup(self) -> None:
        """``Cleanup``."""


ExecutorFactory = Callable[[BuildInfo, BuildLogger, Context], Executor]
PROVIDERS: dict[str, ExecutorFactory] = {"docker": DockerExecutor, "custom": CustomExecutor}


def factory_for(name: str) -> ExecutorFactory:
    """``GetExecutorProvider``: the provider for ``name`` (KeyError when unknown)."""
    return PROVIDERS[name]
