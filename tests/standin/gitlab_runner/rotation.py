"""Automatic token rotation (commands/multi.go ``resetRunnerTokens``,
``nextRunnerToReset``, ``resetOneRunnerToken``; common/reset_token.go; common/consts.go
``TokenResetIntervalFactor``)."""

from __future__ import annotations

import datetime
import threading
from pathlib import Path

from . import config, log
from .config import ZERO_TIME, Config, RunnerConfig
from .network import GitLabClient

RESET_FACTOR = 0.75


def next_to_reset(cfg: Config) -> tuple[RunnerConfig | None, datetime.datetime]:
    """``nextRunnerToReset``: the runner whose token is due first (obtained + 75 % of
    its lifetime); runners without ``token_expires_at`` never rotate."""
    found: RunnerConfig | None = None
    when = ZERO_TIME
    for runner in cfg.runners:
        if runner.token_expires_at == ZERO_TIME:
            continue
        lifetime = runner.token_expires_at - runner.token_obtained_at
        due = runner.token_obtained_at + lifetime * RESET_FACTOR
        if found is None or due < when:
            found, when = runner, due
    return found, when


class TokenRotator:
    """Rotates tokens one by one and writes them back into config.toml."""

    def __init__(
        self,
        path: Path,
        cfg: Config,
        client: GitLabClient,
        system_id: str,
        stopping: threading.Event,
    ) -> None:
        self.path, self.cfg, self.client = path, cfg, client
        self.system_id, self.stopping = system_id, stopping

    def run(self) -> None:
        """Until stopping: sleep until the next due token, reset it, save."""
        while not self.stopping.is_set():
            runner, due = next_to_reset(self.cfg)
            if runner is None:
                return
            delay = (due - datetime.datetime.now(datetime.UTC)).total_seconds()
            if delay > 0 and self.stopping.wait(min(delay, 3600.0)):
                return
            if delay > 3600.0:
                continue
            if not self.reset(runner):
                self.stopping.wait(60.0)

    def reset(self, runner: RunnerConfig) -> bool:
        """``ResetToken`` + save; FF_DISABLE_AUTOMATIC_TOKEN_ROTATION only warns."""
        if runner.feature_flags.get("FF_DISABLE_AUTOMATIC_TOKEN_ROTATION"):
            log.warning(
                "Automatic token rotation is disabled for runner. Your token is about to expire",
                runner=runner.name,
            )
            runner.token_expires_at = ZERO_TIME
            return True
        answer = self.client.reset_token(runner.url, runner.token, self.system_id)
        if answer is None or not answer.get("token"):
            return False
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        runner.token = str(answer["token"])
        runner.token_obtained_at = now
        runner.token_expires_at = config.parse_time(answer.get("token_expires_at"))
        runner.raw["token"] = runner.token
        runner.raw["token_obtained_at"] = now
        runner.raw["token_expires_at"] = runner.token_expires_at
        try:
            config.save(self.path, self.cfg.raw)
        except OSError as exc:
            log.error("Failed to save config", error=exc)
        return True
