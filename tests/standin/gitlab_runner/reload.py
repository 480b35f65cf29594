"""config.toml reloading while ``gitlab-runner run`` runs (commands/multi.go
``updateConfig``, ``checkConfig``, ``reloadConfig``, ``updateWorkers``,
``resetRunnerTokens``' ``configReloaded`` case; common/consts.go
``ReloadConfigInterval``; common/config.go ``LoadConfig`` keeps the file's ModTime,
``SaveConfig`` sets it to now).

Every 3 s the file's modification time is compared with the loaded one; a newer file
(or SIGHUP) is loaded again: runners, ``concurrent`` (workers are started or let go
after their current job), log level, the health of every runner reset ("Configuration
loaded"), and token rotation starts over on the new config. A file that does not load
is logged ("Failed to load config") and its time remembered, so it is not retried
until it changes again; the old configuration stays in force.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from . import config, log
from .rotation import TokenRotator

if TYPE_CHECKING:
    from .multi import RunCommand

#: common/consts.go ``ReloadConfigInterval``.
RELOAD_CONFIG_INTERVAL = 3.0


def mod_time(path: Path) -> int:
    """The file's modification time (ns); 0 when it cannot be read."""
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


class ConfigReloader:
    """The run loop's config half: reload on change or SIGHUP, scale the workers,
    restart token rotation."""

    def __init__(
        self,
        command: RunCommand,
        workers: list[threading.Thread],
        start_worker: Callable[[int], threading.Thread],
    ) -> None:
        self.command, self.workers, self.start_worker = command, workers, start_worker
        self.loaded_at = mod_time(command.config_path)
        self._forced = threading.Event()
        self._rotation_stop = threading.Event()

    def request(self) -> None:
        """SIGHUP: reload now, changed or not (``reloadSignal``)."""
        self._forced.set()

    def start(self) -> None:
        """Token rotation on the loaded config, the workers, and the reload loop."""
        self._start_rotation()
        self.update_workers()
        threading.Thread(target=self._run, daemon=True, name="config-reload").start()

    def _start_rotation(self) -> None:
        """``resetRunnerTokens`` on the current config (a reload cancels the task)."""
        self._rotation_stop.set()
        stop = self._rotation_stop = threading.Event()
        command = self.command
        threading.Thread(target=self._forward_stop, args=(stop,), daemon=True).start()
        rotator = TokenRotator(
            command.config_path, command.config, command.client, command.system_id, stop
        )
        threading.Thread(target=rotator.run, daemon=True, name="token-rotation").start()

    def _forward_stop(self, stop: threading.Event) -> None:
        """The rotation stops with the runner too."""
        while not stop.is_set():
            if self.command.stopping.wait(0.5):
                stop.set()

    def update_workers(self) -> None:
        """``updateWorkers``: one worker per ``concurrent`` slot; a worker beyond it
        leaves once its current job is done (it checks ``concurrent`` itself)."""
        for index in range(self.command.config.concurrent):
            if index < len(self.workers) and self.workers[index].is_alive():
                continue
            thread = self.start_worker(index)
            if index < len(self.workers):
                self.workers[index] = thread
            else:
                self.workers.append(thread)

    def _run(self) -> None:
        """``updateConfig``: every 3 s ``checkConfig``, at once on SIGHUP."""
        while not self.command.stopping.is_set():
            forced = self._forced.wait(RELOAD_CONFIG_INTERVAL)
            self._forced.clear()
            if self.command.stopping.is_set():
                return
            if forced or mod_time(self.command.config_path) > self._known():
                self.reload()

    def _known(self) -> int:
        """``config.ModTime``: the loaded file's time, or the runner's own last save."""
        return max(self.loaded_at, config.SAVED_AT.get(self.command.config_path, 0))

    def reload(self) -> None:
        """``reloadConfig``: load, then workers and token rotation on the new config."""
        current = mod_time(self.command.config_path)
        try:
            self.command.reload_config()
        except (OSError, ValueError) as exc:
            log.error("Failed to load config", error=exc)
            self.loaded_at = current  # checkConfig: don't reload the same file
            return
        self.loaded_at = current
        self.update_workers()
        self._start_rotation()
